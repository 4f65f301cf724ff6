import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// The eleven perception and chart & document suites as the catalog (and `assay suites list`)
/// sees them.
final class PerceptionDocumentCatalogTests: XCTestCase {
    static let suites: [(id: String, group: String, scorer: String)] = [
        ("mmbench", "perception", "mmbench_circular"), ("hallusionbench", "perception", "hallusionbench"),
        ("mmvp", "perception", "mmvp"), ("realworldqa", "perception", "realworldqa"), ("pope", "perception", "pope"),
        ("ai2d", "chart_doc", "multiple_choice"), ("chartqa", "chart_doc", "chartqa"), ("charxiv", "chart_doc", "charxiv"),
        ("ocrbench", "chart_doc", "ocrbench"), ("docvqa", "chart_doc", "anls"), ("infovqa", "chart_doc", "anls"),
    ]

    func testEverySuiteLoadsWithItsScorerAndDescribesItsSource() throws {
        let catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
        for expected in Self.suites {
            let suite = try catalog.suite(expected.id)
            let manifest = suite.manifest
            XCTAssertEqual(manifest.group, expected.group, expected.id)
            XCTAssertEqual(manifest.scorer, expected.scorer, expected.id)
            XCTAssertFalse(manifest.split.isEmpty, expected.id)
            XCTAssertFalse(manifest.metric.isEmpty, expected.id)
            XCTAssertEqual(manifest.source?.format, "vlmevalkit_tsv", expected.id)
            XCTAssertNotNil(manifest.source?.name, expected.id)
            XCTAssertEqual(manifest.source?.md5?.count, 32, expected.id)
            XCTAssertTrue(manifest.source?.url?.hasSuffix(".tsv") ?? false, expected.id)
            // Every suite but MMBench (whose v1.1 row count we could not check) states its size.
            if expected.id != "mmbench" { XCTAssertNotNil(manifest.expectedItems, expected.id) }
            let readme = Fixtures.suitesDirectory.appendingPathComponent(expected.id).appendingPathComponent("README.md")
            XCTAssertTrue(FileManager.default.fileExists(atPath: readme.path), "\(expected.id) has a README")
        }
    }

    /// Weighted units make a ratio metric exact: F1 = Σ value / Σ weight with the POPE weights.
    func testWeightedUnitsGiveTheRatioAndItsPairedInterval() {
        var generator = SeededGenerator(seed: 7)
        func units(_ outcomes: [Int]) -> [BootstrapUnit] {
            outcomes.enumerated().map { index, outcome in
                // 0 TP, 1 FP, 2 FN, 3 TN
                let (value, weight): (Double, Double) = outcome == 0 ? (2, 2) : outcome == 3 ? (0, 0) : (0, 1)
                return BootstrapUnit(id: "\(index)", value: value, weight: weight)
            }
        }
        func f1(_ outcomes: [Int]) -> Double {
            let tp = Double(outcomes.filter { $0 == 0 }.count), fp = Double(outcomes.filter { $0 == 1 }.count)
            let fn = Double(outcomes.filter { $0 == 2 }.count)
            let precision = tp / (tp + fp), recall = tp / (tp + fn)
            return 2 * precision * recall / (precision + recall)
        }
        let base = (0..<400).map { _ in generator.nextIndex(below: 4) }
        let candidate = base.map { $0 == 1 || $0 == 2 ? ($0 == 1 ? 3 : 0) : $0 }  // errors fixed
        XCTAssertEqual(Statistics.headline(units(base), statistic: .mean), f1(base), accuracy: 1e-12)
        XCTAssertEqual(Statistics.headline(units(candidate), statistic: .mean), 1, accuracy: 1e-12)
        let interval = Statistics.pairedBootstrap(base: units(base), candidate: units(candidate), statistic: .mean, resamples: 2000)
        XCTAssertTrue(interval.contains(1 - f1(base)), "\(interval) contains \(1 - f1(base))")
        XCTAssertGreaterThan(interval.lower, 0)
        // Unit weights keep the plain mean.
        let plain = [1.0, 0, 1, 1].enumerated().map { BootstrapUnit(id: "\($0.offset)", value: $0.element) }
        XCTAssertEqual(Statistics.headline(plain, statistic: .mean), 0.75)
    }
}
