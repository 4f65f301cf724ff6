import AssayCore
import AssaySuites
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Problems getting a suite's dataset, each naming the suite, the URL or the file.
public enum DataFetchError: Error, CustomStringConvertible, Equatable {
    case noSource(suite: String)
    case checksumMismatch(suite: String, file: String, expected: String, actual: String)
    case interrupted(suite: String, url: String, bytes: Int64, reason: String)
    case httpStatus(suite: String, url: String, status: Int)
    case notDownloaded(suite: String, file: String)
    /// `source.name` would place the file outside the data folder (`../`, `/`, a hidden name).
    case badSourceName(suite: String, name: String)

    public var description: String {
        switch self {
        case .badSourceName(let suite, let name):
            return "suite '\(suite)': source.name '\(name)' must be a plain file name (letters, digits, '-', '_', '.'; no '/' and not starting with '.')"
        case .noSource(let suite):
            return "suite '\(suite)' names no download URL and MD5 in its suite.yaml; pass its dataset with --data FILE"
        case .checksumMismatch(let suite, let file, let expected, let actual):
            return "\(file): MD5 \(actual) does not match \(expected) from suite '\(suite)'s suite.yaml; the file is refused "
                + "(delete it, or check that the suite's source is the version you mean)"
        case .interrupted(let suite, let url, let bytes, let reason):
            return "download of \(url) for suite '\(suite)' stopped after \(bytes) bytes (\(reason)); run the same command again to resume"
        case .httpStatus(let suite, let url, let status):
            return "download of \(url) for suite '\(suite)' failed: HTTP \(status)"
        case .notDownloaded(let suite, let file):
            return "no dataset for suite '\(suite)' at \(file): run `assay data fetch \(suite)` (with the same --data-dir), or pass --data FILE"
        }
    }
}

/// `assay data fetch`: downloads the dataset a suite's YAML names (VLMEvalKit's TSV URL) into a
/// cache folder, resuming a partial download with an HTTP Range request, and accepts the file only
/// when its MD5 matches the YAML's. A folder that already holds verified files works offline.
public struct DataFetch: Sendable {
    public let directory: URL

    public init(directory: URL) {
        self.directory = directory
    }

    /// `$ASSAY_DATA_DIR`, else `<user cache>/assay/data` (`~/.cache/assay/data` on Linux).
    public static func defaultDirectory() -> URL {
        if let env = ProcessInfo.processInfo.environment["ASSAY_DATA_DIR"], !env.isEmpty { return URL(fileURLWithPath: env) }
        let caches = FileManager.default.urls(for: .cachesDirectory, in: .userDomainMask).first
            ?? URL(fileURLWithPath: NSHomeDirectory()).appendingPathComponent(".cache")
        return caches.appendingPathComponent("assay").appendingPathComponent("data")
    }

    /// Where a suite's dataset lives in the folder: `<source name>.<extension of the URL>`.
    public func file(for suite: Suite) throws -> URL {
        guard let source = suite.manifest.source, let url = source.url.flatMap(URL.init(string:)) else {
            throw DataFetchError.noSource(suite: suite.id)
        }
        let ext = url.pathExtension.isEmpty ? (source.format == "jsonl" ? "jsonl" : "tsv") : url.pathExtension
        let name = "\(source.name ?? suite.id).\(ext)"
        // A user suite's name is joined to the data folder: it must not climb out of it.
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard !name.hasPrefix("."), name.count <= 200, name.allSatisfy(allowed.contains) else {
            throw DataFetchError.badSourceName(suite: suite.id, name: source.name ?? suite.id)
        }
        return directory.appendingPathComponent(name)
    }

    /// The verified local dataset of a suite, without any network: an error when it is absent
    /// or its checksum does not match.
    public func localDataset(for suite: Suite) throws -> URL {
        let file = try file(for: suite)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw DataFetchError.notDownloaded(suite: suite.id, file: file.path)
        }
        try verify(file, suite: suite)
        return file
    }

    func verify(_ file: URL, suite: Suite) throws {
        guard let expected = suite.manifest.source?.md5?.lowercased(), !expected.isEmpty else { return }
        let actual = try MD5.hex(fileAt: file)
        guard actual == expected else {
            throw DataFetchError.checksumMismatch(suite: suite.id, file: file.path, expected: expected, actual: actual)
        }
    }

    /// How to get the dataset without this machine downloading it: where to put a file fetched
    /// elsewhere, the MD5 it must have, and `--data FILE` as the alternative. `nil` for a suite
    /// that names no download (its error already says to pass --data).
    public func manualInstructions(for suite: Suite) -> String? {
        guard let source = suite.manifest.source, let url = source.url, let file = try? file(for: suite) else { return nil }
        var text = "to get it another way: download \(url) elsewhere and place it at \(file.path)"
        if let md5 = source.md5, !md5.isEmpty { text += " (its MD5 must be \(md5.lowercased()))" }
        text += "; or pass any copy of it to sweep with --data FILE"
        return text
    }

    /// What `fetch` did.
    public enum Outcome: Sendable, Hashable {
        /// The verified file was already there; nothing was downloaded.
        case present(URL)
        /// Downloaded (`resumedFrom` > 0 when a partial file was continued) and verified.
        case downloaded(URL, bytes: Int64, resumedFrom: Int64)
    }

    /// Makes sure the suite's dataset is in the folder and verified, downloading what is missing.
    /// A partial download is kept as `<file>.part` and continued next time; a completed download
    /// whose checksum does not match is moved to `<file>.rejected` and refused.
    public func fetch(_ suite: Suite, progress: (@Sendable (Int64, Int64?) -> Void)? = nil) async throws -> Outcome {
        let file = try file(for: suite)
        guard let source = suite.manifest.source, let urlText = source.url, let url = URL(string: urlText),
              let md5 = source.md5, !md5.isEmpty else {
            throw DataFetchError.noSource(suite: suite.id)
        }
        let fileManager = FileManager.default
        try fileManager.createDirectory(at: directory, withIntermediateDirectories: true)
        if fileManager.fileExists(atPath: file.path) {
            try verify(file, suite: suite)
            return .present(file)
        }
        let part = file.appendingPathExtension("part")
        let resumedFrom = (try? fileManager.attributesOfItem(atPath: part.path)[.size] as? NSNumber)?.int64Value ?? 0
        let transfer = RangeDownload(url: url, destination: part, offset: resumedFrom, suite: suite.id, progress: progress)
        let bytes = try await transfer.run()
        let actual = try MD5.hex(fileAt: part)
        guard actual == md5.lowercased() else {
            let rejected = file.appendingPathExtension("rejected")
            try? fileManager.removeItem(at: rejected)
            try? fileManager.moveItem(at: part, to: rejected)
            throw DataFetchError.checksumMismatch(suite: suite.id, file: rejected.path, expected: md5.lowercased(), actual: actual)
        }
        try fileManager.moveItem(at: part, to: file)
        return .downloaded(file, bytes: bytes, resumedFrom: transfer.effectiveOffset.snapshot)
    }
}

/// One HTTP GET streamed to a file, continuing at `offset` with `Range: bytes=offset-`. A server
/// that ignores the range (200) restarts the file; 416 means the partial file is already whole.
final class RangeDownload: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let url: URL
    let destination: URL
    let offset: Int64
    let suite: String
    let progress: (@Sendable (Int64, Int64?) -> Void)?
    /// Where writing actually started (0 when the server ignored the range).
    let effectiveOffset = Locked<Int64>(0)

    private let state = Locked(State())
    struct State {
        var handle: FileHandle?
        var written: Int64 = 0
        var expected: Int64?
        var status = 0
        var failure: Error?
        var continuation: CheckedContinuation<Int64, Error>?
        var alreadyComplete = false
    }

    init(url: URL, destination: URL, offset: Int64, suite: String, progress: (@Sendable (Int64, Int64?) -> Void)?) {
        self.url = url
        self.destination = destination
        self.offset = offset
        self.suite = suite
        self.progress = progress
    }

    /// Bytes now in the destination file.
    func run() async throws -> Int64 {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: 120)
        if offset > 0 { request.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range") }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.urlCache = nil
        let session = URLSession(configuration: configuration, delegate: self, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        return try await withCheckedThrowingContinuation { continuation in
            state.withLock { $0.continuation = continuation }
            session.dataTask(with: request).resume()
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let http = response as? HTTPURLResponse
        let status = http?.statusCode ?? 0
        var disposition = URLSession.ResponseDisposition.allow
        state.withLock { state in
            state.status = status
            do {
                switch status {
                case 206:
                    let handle = try FileHandle(forWritingTo: destination)
                    try handle.seekToEnd()
                    state.handle = handle
                    state.written = offset
                    effectiveOffset.withLock { $0 = offset }
                    if response.expectedContentLength > 0 { state.expected = offset + response.expectedContentLength }
                case 200:
                    _ = FileManager.default.createFile(atPath: destination.path, contents: nil)
                    state.handle = try FileHandle(forWritingTo: destination)
                    state.written = 0
                    if response.expectedContentLength > 0 { state.expected = response.expectedContentLength }
                case 416 where offset > 0:
                    // The partial file already holds everything the server has.
                    state.alreadyComplete = true
                    disposition = .cancel
                default:
                    state.failure = DataFetchError.httpStatus(suite: suite, url: url.absoluteString, status: status)
                    disposition = .cancel
                }
            } catch {
                state.failure = error
                disposition = .cancel
            }
        }
        completionHandler(disposition)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let (written, expected): (Int64, Int64?) = state.withLock { state in
            guard state.failure == nil, let handle = state.handle else { return (state.written, state.expected) }
            do {
                try handle.write(contentsOf: data)
                state.written += Int64(data.count)
            } catch {
                state.failure = error
                dataTask.cancel()
            }
            return (state.written, state.expected)
        }
        progress?(written, expected)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        let (continuation, result): (CheckedContinuation<Int64, Error>?, Result<Int64, Error>) = state.withLock { state in
            try? state.handle?.synchronize()
            try? state.handle?.close()
            state.handle = nil
            let continuation = state.continuation
            state.continuation = nil
            if state.alreadyComplete { return (continuation, .success(offset)) }
            if let failure = state.failure { return (continuation, .failure(failure)) }
            if let error {
                return (continuation, .failure(DataFetchError.interrupted(
                    suite: suite, url: url.absoluteString, bytes: state.written, reason: "\(error.localizedDescription)")))
            }
            if let expected = state.expected, state.written < expected {
                return (continuation, .failure(DataFetchError.interrupted(
                    suite: suite, url: url.absoluteString, bytes: state.written,
                    reason: "connection closed before \(expected) bytes")))
            }
            return (continuation, .success(state.written))
        }
        continuation?.resume(with: result)
    }
}
