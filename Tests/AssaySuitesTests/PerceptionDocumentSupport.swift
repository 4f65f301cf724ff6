import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// Helpers shared by the perception and chart & document suite tests: the built-in suites, small
/// JSONL datasets with VLMEvalKit's columns, and scoring of scripted responses.
enum SuiteHarness {
    /// A suite from the repository's Suites/ folder, with its registered scorer.
    static func suite(_ id: String) throws -> Suite {
        try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory).suite(id)
    }

    /// A 1×1 grey PNG, base64 as VLMEvalKit embeds images (longer than 64 characters, so it is not
    /// read as a reference to another row).
    static let image = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="

    /// Writes `rows` as JSONL in a fresh folder and loads them as the suite's items.
    static func items(_ suite: Suite, rows: [[String: Any]], test: XCTestCase, name: String = "dataset.jsonl") throws -> [Item] {
        let url = try Fixtures.temporaryDirectory(for: test).appendingPathComponent(name)
        try Fixtures.writeJSONL(rows, to: url)
        return try suite.loadItems(from: try DatasetFile.read(url), images: .hashOnly).map(\.item)
    }

    /// Loads `rows` expecting a `DatasetError`, and returns it.
    static func datasetError(_ suite: Suite, rows: [[String: Any]], test: XCTestCase,
                             file: StaticString = #filePath, line: UInt = #line) throws -> DatasetError? {
        do {
            _ = try items(suite, rows: rows, test: test, name: "bad.jsonl")
            XCTFail("expected a DatasetError", file: file, line: line)
            return nil
        } catch let error as DatasetError {
            return error
        }
    }

    /// Extracts and scores one response per item (`response(item)`), as `assay score` does.
    static func scored(_ suite: Suite, _ items: [Item], response: (Item) -> String) -> [ScoredItem] {
        items.map { item in
            let extraction = suite.extract(response(item), item: item)
            return ScoredItem(item: item, extraction: extraction, score: suite.score(extraction, item: item))
        }
    }

    /// The suite's metrics when every item is answered by `response(item)`.
    static func metrics(_ suite: Suite, _ items: [Item], response: (Item) -> String) -> SuiteMetrics {
        suite.aggregate(scored(suite, items, response: response))
    }

    /// The rendered chat messages as text, one block per message, for snapshots.
    static func transcript(_ messages: [Message]) -> String {
        messages.map { "[\($0.role.rawValue)]\n\($0.renderedText)" }.joined(separator: "\n") + "\n"
    }
}

/// Asserts an extraction's answer (or `nil` for unparsed).
func XCTAssertExtraction(_ extraction: Extraction, _ expected: String?, _ message: String = "",
                         file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(extraction.answer, expected, "\(message) (got \(extraction))", file: file, line: line)
}
