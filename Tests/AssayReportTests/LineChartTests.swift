import AssayCore
@testable import AssayReport
import AssayTestSupport
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

/// The scaling report's curves, drawn by the shared line chart: the snapshot was recorded from the
/// scaling chart before it was generalised, so it pins that the generalisation changed no byte.
final class ScalingChartSnapshotTests: XCTestCase {
    static func point(_ n: Int, _ score: Double, _ lower: Double, _ upper: Double) -> ScalingReport.Point {
        ScalingReport.Point(n: n, score: score, interval: Interval(lower, upper), scored: 40, missing: 0, criticCalls: 0)
    }

    func testScalingChartIsUnchanged() throws {
        let p = Self.point
        let average = ScalingChart.Panel(title: "average over 2 suites", series: [
            "first": [p(1, 10, 2.5, 20), p(2, 10, 2.5, 20), p(4, 10, 2.5, 20), p(8, 10, 2.5, 20), p(16, 10, 2.5, 20)],
            "majority": [p(1, 10, 2.5, 20), p(2, 10, 2.5, 20), p(4, 17.5, 7.5, 30), p(8, 15, 5, 27.5), p(16, 7.5, 0, 17.5)],
            "oracle": [p(1, 10, 2.5, 20), p(2, 20, 7.5, 32.5), p(4, 32.5, 17.5, 47.5), p(8, 47.5, 32.5, 62.5), p(16, 77.5, 65, 90)],
        ])
        let narrow = ScalingChart.Panel(title: "arith<&>", series: [
            "self-critic": [p(1, 51, 50, 52), p(4, 52, 51, 53)],
            "custom": [p(1, 50.5, 50, 51), p(4, 51.5, 51, 52)],
        ])
        let svg = ScalingChart.svg(panels: [average, narrow], methods: ["first", "majority", "self-critic", "oracle", "custom"],
                                   title: "policy: score vs n (95% CI)")
        let parser = XMLParser(data: Data(svg.utf8))
        XCTAssertTrue(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
        assertSnapshot(svg, named: "scaling-chart")
    }
}

/// The shared line chart on its own: axes at any scale, breaks at values that are not finite.
final class LineChartTests: XCTestCase {
    func testNonFiniteValuesBreakTheLineAndSmallScalesKeepTheirDecimals() throws {
        let points = [0.0001, 0.0002, .nan, 0.0004, 0.0005, .infinity, 0.0007].enumerated().map {
            LineChart.Point(x: Double($0.offset + 1), y: $0.element)
        }
        let svg = LineChart.svg(panels: [.init(title: "kl", series: [.init(name: "kl", color: "#000", points: points, markers: false)])],
                                legend: [.init(name: "kl", color: "#000")], title: "t", layout: .init(columns: 1, xTitle: "step"))
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 3, svg)
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 1, "the lone point after the infinity")
        XCTAssertFalse(svg.contains("nan") || svg.contains("inf"), svg)
        XCTAssertTrue(svg.contains(">0.0004</text>"), svg)
        XCTAssertEqual(LineChart.tickLabel(47.5, step: 2.5), "47.5")
        XCTAssertEqual(LineChart.tickLabel(0.75, step: 0.25), "0.75")
        XCTAssertEqual(LineChart.tickLabel(40, step: 20), "40")
        XCTAssertEqual(LineChart.tickLabel(1e-9, step: 0.5), "0")
    }
}
