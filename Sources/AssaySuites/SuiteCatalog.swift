import AssayCore
import Foundation

/// All suites Assay knows: the built-in `Suites/<id>/suite.yaml` folders and any user folders
/// (`--suites-dir`), whose suites need no recompiling as long as they use an existing scorer
/// plugin (`multiple_choice`, `yes_no`, …).
public struct SuiteCatalog: Sendable {
    public private(set) var suites: [String: Suite] = [:]

    public init(suites: [Suite]) throws {
        for suite in suites {
            if let existing = self.suites[suite.id] {
                throw SuiteError.duplicateSuite(suite.id, first: existing.manifest.directory ?? "?", second: suite.manifest.directory ?? "?")
            }
            self.suites[suite.id] = suite
        }
    }

    /// Loads the built-in suites and the suites under each of `userDirectories`. A user suite
    /// may not reuse a built-in id.
    public static func load(builtIn: URL?, userDirectories: [URL] = []) throws -> SuiteCatalog {
        var suites: [Suite] = []
        for directory in [builtIn].compactMap({ $0 }) + userDirectories {
            suites += try loadDirectory(directory)
        }
        return try SuiteCatalog(suites: suites)
    }

    /// Every `*/suite.yaml` directly below `directory` (or `directory/suite.yaml` itself).
    public static func loadDirectory(_ directory: URL) throws -> [Suite] {
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SuiteError.manifest(file: directory.path, "suites folder not found")
        }
        var manifests: [URL] = []
        let own = directory.appendingPathComponent("suite.yaml")
        if fileManager.fileExists(atPath: own.path) { manifests.append(own) }
        let children = try fileManager.contentsOfDirectory(atPath: directory.path).sorted()
        for child in children {
            let candidate = directory.appendingPathComponent(child).appendingPathComponent("suite.yaml")
            if fileManager.fileExists(atPath: candidate.path) { manifests.append(candidate) }
        }
        return try manifests.map { url in
            let manifest = try SuiteManifest.load(from: url)
            return try Suite(manifest: manifest, scorer: try ScorerRegistry.scorer(for: manifest))
        }
    }

    public var ids: [String] { suites.keys.sorted() }

    public func suite(_ id: String) throws -> Suite {
        guard let suite = suites[id] else { throw SuiteError.unknownSuite(id, known: ids) }
        return suite
    }

    /// Suites by a comma-separated list of ids, or `all`.
    public func suites(matching list: String) throws -> [Suite] {
        if list == "all" { return ids.compactMap { suites[$0] } }
        return try list.split(separator: ",").map { try suite(String($0).trimmingCharacters(in: .whitespaces)) }
    }

    /// Finds the built-in `Suites/` folder: `$ASSAY_SUITES_DIR`, then `Suites/` beside the
    /// executable's package (walking up from the executable and from the working directory),
    /// then `<prefix>/share/assay/Suites` for an installed binary.
    public static func locateBuiltIn(executable: URL? = nil) throws -> URL {
        let fileManager = FileManager.default
        if let env = ProcessInfo.processInfo.environment["ASSAY_SUITES_DIR"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        var searched: [String] = []
        var starts: [URL] = [URL(fileURLWithPath: fileManager.currentDirectoryPath)]
        if let executable { starts.insert(executable.deletingLastPathComponent(), at: 0) }
        for start in starts {
            var directory = start.standardizedFileURL
            for _ in 0..<8 {
                let candidate = directory.appendingPathComponent("Suites")
                searched.append(candidate.path)
                if fileManager.fileExists(atPath: candidate.appendingPathComponent("mmstar/suite.yaml").path) {
                    return candidate
                }
                let parent = directory.deletingLastPathComponent()
                if parent.path == directory.path { break }
                directory = parent
            }
        }
        if let executable {
            let shared = executable.deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("share/assay/Suites")
            searched.append(shared.path)
            if fileManager.fileExists(atPath: shared.path) { return shared }
        }
        throw SuiteError.builtInSuitesNotFound(searched: searched)
    }
}
