import AssayCore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// Loads the repository's built-in catalog.
func builtInCatalog() throws -> SuiteCatalog {
    try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
}

/// Writes rows as JSONL in a temporary folder and loads them as items of `suite`.
func loadItems(_ rows: [[String: Any]], suite: Suite, test: XCTestCase, name: String = "items.jsonl") throws -> [Item] {
    let directory = try Fixtures.temporaryDirectory(for: test)
    let url = directory.appendingPathComponent(name)
    try Fixtures.writeJSONL(rows, to: url)
    return try suite.loadItems(from: DatasetFile.read(url), images: .hashOnly).map(\.item)
}

/// Scores raw predictions (by item id) the way `assay score` does and aggregates them.
func scoreRaw(_ suite: Suite, items: [Item], predictions: [String: String], extracted: Bool = false) -> SuiteMetrics {
    var results: [ScoredItem] = []
    for item in items {
        guard let text = predictions[item.id] else { continue }
        let extraction: Extraction = extracted ? suite.imported(text, item: item) : suite.extract(text, item: item)
        results.append(ScoredItem(item: item, extraction: extraction, score: suite.score(extraction, item: item)))
    }
    var metrics = suite.aggregate(results)
    metrics.missing = items.count - results.count
    return metrics
}
