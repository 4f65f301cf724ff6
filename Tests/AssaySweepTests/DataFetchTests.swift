import AssayCore
import AssayEngine
import AssayServer
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// A file server on 127.0.0.1 that honours `Range` and can cut its first full transfer short.
final class FileServer: @unchecked Sendable {
    let content: Data
    let ranges = Locked<[String?]>([])
    let cutFirstTransferAt: Int?
    var server: HTTPServer?

    init(content: Data, cutFirstTransferAt: Int?) {
        self.content = content
        self.cutFirstTransferAt = cutFirstTransferAt
    }

    func start() async throws -> String {
        let content = self.content
        let ranges = self.ranges
        let cut = cutFirstTransferAt
        server = try await HTTPServer.start { request in
            let range = request.headers["range"]
            let count = ranges.withLock { list -> Int in
                list.append(range)
                return list.count
            }
            if let range, range.hasPrefix("bytes="), let start = Int(range.dropFirst(6).split(separator: "-").first ?? "") {
                guard start < content.count else { return .text(416, "range not satisfiable") }
                return .response(status: 206, headers: [("Content-Range", "bytes \(start)-\(content.count - 1)/\(content.count)")],
                                 body: content.subdata(in: start..<content.count))
            }
            if count == 1, let cut { return .truncatedBody(status: 200, headers: [], body: content, bytes: cut) }
            return .response(status: 200, headers: [("Content-Type", "text/tab-separated-values")], body: content)
        }
        return server?.baseURL ?? ""
    }
}

final class DataFetchTests: XCTestCase {
    /// A suite folder whose YAML points at the local server with the given MD5.
    func makeSuite(in dir: URL, url: String, md5: String) throws -> Suite {
        let folder = dir.appendingPathComponent("suites/tiny")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try """
            id: tiny
            source:
              format: vlmevalkit_tsv
              name: Tiny
              url: \(url)/Tiny.tsv
              md5: \(md5)
            columns:
              required: [index, question, answer]
            prompt:
              version: 1
              template: "{question}"
            scorer: multiple_choice
            """.write(to: folder.appendingPathComponent("suite.yaml"), atomically: true, encoding: .utf8)
        return try XCTUnwrap(SuiteCatalog.loadDirectory(dir.appendingPathComponent("suites")).first)
    }

    /// A TSV big enough to be cut mid-transfer.
    func content() -> Data {
        var text = "index\tquestion\tA\tB\tanswer\n"
        for i in 0..<20_000 { text += "\(i)\tQuestion number \(i)?\tyes\tno\tA\n" }
        return Data(text.utf8)
    }

    func testInterruptedDownloadResumesWithRangeThenWorksOffline() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let data = content()
        let files = FileServer(content: data, cutFirstTransferAt: data.count / 3)
        let url = try await files.start()
        let suite = try makeSuite(in: dir, url: url, md5: MD5.hex(data))
        let fetch = DataFetch(directory: dir.appendingPathComponent("data"))
        let target = try fetch.file(for: suite)

        do {
            _ = try await fetch.fetch(suite)
            XCTFail("the cut transfer was accepted")
        } catch let error as DataFetchError {
            guard case .interrupted = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("run the same command again to resume"), "\(error)")
        }
        let partial = (try FileManager.default.attributesOfItem(atPath: target.path + ".part")[.size] as? NSNumber)?.intValue ?? 0
        XCTAssertEqual(partial, data.count / 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: target.path))

        let outcome = try await fetch.fetch(suite)
        XCTAssertEqual(outcome, .downloaded(target, bytes: Int64(data.count), resumedFrom: Int64(partial)))
        XCTAssertEqual(files.ranges.snapshot, [nil, "bytes=\(partial)-"])
        XCTAssertEqual(try Data(contentsOf: target), data)
        await files.server?.shutdown()

        // With the server gone, the verified file is used as it is.
        let again = try await fetch.fetch(suite)
        XCTAssertEqual(again, .present(target))
        XCTAssertEqual(try fetch.localDataset(for: suite), target)
        XCTAssertEqual(try suite.loadItems(from: try DatasetFile.read(target)).count, 20_000)
    }

    func testChecksumMismatchIsRefusedWithAClearError() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let data = content()
        let files = FileServer(content: data, cutFirstTransferAt: nil)
        let url = try await files.start()
        let wrong = String(repeating: "0", count: 32)
        let suite = try makeSuite(in: dir, url: url, md5: wrong)
        let fetch = DataFetch(directory: dir.appendingPathComponent("data"))
        let target = try fetch.file(for: suite)
        do {
            _ = try await fetch.fetch(suite)
            XCTFail("a file with the wrong checksum was accepted")
        } catch let error as DataFetchError {
            XCTAssertEqual(error, .checksumMismatch(suite: "tiny", file: target.path + ".rejected", expected: wrong, actual: MD5.hex(data)))
            XCTAssertTrue("\(error)".contains("does not match"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: target.path))
        await files.server?.shutdown()

        // A file already in the folder is verified too: a wrong one is refused, not used.
        try data.write(to: target)
        XCTAssertThrowsError(try fetch.localDataset(for: suite)) { error in
            XCTAssertTrue("\(error)".contains("does not match"), "\(error)")
        }
        // And a missing one says how to get it.
        try FileManager.default.removeItem(at: target)
        XCTAssertThrowsError(try fetch.localDataset(for: suite)) { error in
            XCTAssertTrue("\(error)".contains("assay data fetch tiny"), "\(error)")
        }
    }

    func testBuiltInSuitesNameVLMEvalKitURLsAndMD5s() throws {
        let catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
        for id in ["mmstar", "blink", "mmmu", "mathvista"] {
            let source = try XCTUnwrap(try catalog.suite(id).manifest.source, id)
            XCTAssertTrue(source.url?.hasPrefix("https://") ?? false, id)
            XCTAssertTrue(source.url?.hasSuffix("/\(source.name ?? "?").tsv") ?? false, id)
            XCTAssertEqual(source.md5?.count, 32, id)
        }
    }

    func testMD5MatchesRFC1321Vectors() {
        let vectors = [
            "": "d41d8cd98f00b204e9800998ecf8427e",
            "a": "0cc175b9c0f1b6a831c399e269772661",
            "abc": "900150983cd24fb0d6963f7d28e17f72",
            "message digest": "f96b697d7cb7938d525a2f31aaf161d0",
            "abcdefghijklmnopqrstuvwxyz": "c3fcd3d76192e4007dfb496cca67e13b",
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890": "57edf4a22be3c955ac49da2e2107b67a",
        ]
        for (input, digest) in vectors { XCTAssertEqual(MD5.hex(Data(input.utf8)), digest, input) }
        let million = Data(repeating: UInt8(ascii: "a"), count: 1_000_000)
        XCTAssertEqual(MD5.hex(million), "7707d6ae4e027c70eea2a935c2296f21")
        var streamed = MD5()
        var offset = 0
        for size in [1, 63, 64, 65, 1000, 999_000, 0, 7] where offset < million.count {
            let end = min(million.count, offset + size)
            streamed.update(million.subdata(in: offset..<end))
            offset = end
        }
        XCTAssertEqual(streamed.finalize().map { String(format: "%02x", $0) }.joined(), "7707d6ae4e027c70eea2a935c2296f21")
    }
}
