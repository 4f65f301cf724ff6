import AssayCore
@testable import AssaySuites
import XCTest

/// Scoring reads at most `Suite.maxScoredBytes` of a response: a degenerate multi-megabyte
/// answer took minutes of rule matching; it is now unparsed, with the size in the reason.
final class ResponseSizeTests: XCTestCase {
    func testAResponseOverTheCapIsUnparsedAndOneUnderItIsRead() throws {
        let suite = try builtInCatalog().suite("mmstar")
        let item = Item(id: "1", question: "Which?", options: [AnswerOption(label: "A", text: "x"), AnswerOption(label: "B", text: "y")],
                        answers: ["A"])
        let filler = String(repeating: "thinking about it. ", count: 10_000)  // 190 KB
        XCTAssertEqual(suite.extract(filler + "The answer is (A).", item: item).answer, "A")
        let huge = String(repeating: "thinking about it. ", count: 20_000) + "The answer is (A)."
        guard case .unparsed(let reason) = suite.extract(huge, item: item) else { return XCTFail("a 380 KB response was parsed") }
        XCTAssertTrue(reason.contains("\(huge.utf8.count) bytes"), reason)
    }
}
