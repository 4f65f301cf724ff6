import AssayCore
@testable import AssayReport
import AssayTestSupport
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

final class BarChartTests: XCTestCase {
    func testChartHasABarPerRunAndSuiteAndEscapesNames() throws {
        let svg = BarChart.svg(
            suites: ["blink", "mmmu"],
            series: [.init(run: "critic<r1>", values: ["blink": 5.2, "mmmu": -1.5], intervals: ["blink": (2.0, 8.0)]),
                     .init(run: "base+sft", values: ["blink": 1.0])])
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertTrue(svg.contains("critic&lt;r1&gt;"))
        XCTAssertFalse(svg.contains("critic<r1>"))
        XCTAssertEqual(svg.components(separatedBy: "<rect x=").count - 1, 2 /* legend */ + 3 /* bars */)
        XCTAssertTrue(svg.contains("+5.20"))
        XCTAssertTrue(svg.contains("-1.50"))
        // Well-formed XML.
        let parser = XMLParser(data: Data(svg.utf8))
        XCTAssertTrue(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
    }

    func testNiceSteps() {
        XCTAssertEqual(BarChart.niceStep(0.7), 1)
        XCTAssertEqual(BarChart.niceStep(3.1), 5)
        XCTAssertEqual(BarChart.niceStep(12), 20)
    }
}
