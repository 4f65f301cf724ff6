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

/// Labels of the chart stay clear of the suite names, and plain scores are not signed.
final class BarChartLabelTests: XCTestCase {
    /// `(x, anchor, text)` of every `<text>` element.
    func texts(_ svg: String) throws -> [(x: Double, anchor: String, text: String)] {
        let element = try NSRegularExpression(pattern: #"<text ([^>]*)>([^<]*)</text>"#)
        func attribute(_ name: String, _ attributes: String) -> String? {
            guard let range = attributes.range(of: name + "=\"") else { return nil }
            return String(attributes[range.upperBound...].prefix { $0 != "\"" })
        }
        return element.matches(in: svg, range: NSRange(svg.startIndex..., in: svg)).compactMap { match in
            guard let attributes = Range(match.range(at: 1), in: svg).map({ String(svg[$0]) }),
                  let text = Range(match.range(at: 2), in: svg).map({ String(svg[$0]) }),
                  let x = attribute("x", attributes).flatMap(Double.init) else { return nil }
            return (x, attribute("text-anchor", attributes) ?? "start", text)
        }
    }

    func testNegativeDeltaLabelsEndRightOfTheSuiteNames() throws {
        let suites = ["mathvista", "blink"]
        let svg = BarChart.svg(
            suites: suites,
            series: [.init(run: "cand", values: ["mathvista": -12.34, "blink": 3.5], intervals: ["mathvista": (-15.5, -9.0), "blink": (1, 6)])])
        let all = try texts(svg)
        let names = all.filter { suites.contains($0.text) }
        XCTAssertEqual(names.count, 2)
        // Suite names are right-aligned ending at their x; a negative label is right-aligned too
        // and reaches leftwards by its width (at most charWidth per character).
        let namesEnd = try XCTUnwrap(names.map(\.x).max())
        let label = try XCTUnwrap(all.first { $0.text == "-12.34" }, svg)
        XCTAssertEqual(label.anchor, "end")
        let labelStart = label.x - Double(label.text.count) * BarChart.charWidth
        XCTAssertGreaterThan(labelStart, namesEnd, "the label of -12.34 overlaps the suite names:\n\(svg)")
        XCTAssertTrue(all.contains { $0.text == "+3.50" })
    }

    func testScoresAreLabelledWithoutASign() throws {
        let svg = BarChart.svg(suites: ["blink"], series: [.init(run: "gpt4o", values: ["blink": 60.04])], title: "Scores", signedValues: false)
        let labels = try texts(svg).map(\.text)
        XCTAssertTrue(labels.contains("60.04"), "\(labels)")
        XCTAssertFalse(labels.contains { $0.hasPrefix("+") }, "\(labels)")
        XCTAssertFalse(svg.contains(": +60.04"), svg)
    }

    func testLongRowNamesStayOnTheCanvas() throws {
        let row = "blink › Functional_Correspondence"
        let svg = BarChart.svg(suites: ["blink", row], series: [.init(run: "c", values: ["blink": 1, row: -20.77])])
        let label = try XCTUnwrap(try texts(svg).first { $0.text == row })
        XCTAssertGreaterThanOrEqual(label.x - Double(row.count) * BarChart.charWidth, 0, "the row name runs off the left edge")
        let value = try XCTUnwrap(try texts(svg).first { $0.text == "-20.77" })
        XCTAssertGreaterThan(value.x - 6 * BarChart.charWidth, label.x, "the value label overlaps the row name")
    }
}
