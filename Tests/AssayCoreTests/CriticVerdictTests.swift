import AssayCore
import XCTest

final class CriticVerdictTests: XCTestCase {
    func testBoxedChoiceIsReadInTheReleasedFormat() {
        let cases: [(String, Int?, String)] = [
            ("<think>Response 1 miscounts.</think> \\boxed{2}", 2, "boxed"),
            ("<think>…</think>The better one is \\boxed{\\text{Response 1}}.", 1, "boxed"),
            ("\\boxed{ 2 }", 2, "boxed"),
            ("\\boxed{Answer 1}", 1, "boxed"),
            ("First \\boxed{1}, no wait: \\boxed{2}", 2, "boxed"),
            // The box wins over a sentence, and a box inside unfinished reasoning still counts.
            ("Response 1 is better. \\boxed{2}", 2, "boxed"),
            ("<think>so \\boxed{1}", 1, "boxed"),
            // No box: a final statement of the choice.
            ("<think>hmm</think> Response 2 is better because it adds correctly.", 2, "stated"),
            ("Answer 1 is better than answer 2? No, answer 2 is the better one.", 2, "stated"),
            ("1. The first response is better.  The second response is not better.", 1, "stated"),
        ]
        for (reply, position, method) in cases {
            let verdict = CriticVerdict.read(reply)
            XCTAssertEqual(verdict.position, position, reply)
            if case .prefers(_, let m) = verdict { XCTAssertEqual(m, method, reply) }
        }
    }

    func testNoChoiceIsUnparsedNeverGuessed() {
        for reply in ["", "<think>I cannot decide</think>", "\\boxed{3}", "\\boxed{1 and 2}", "\\boxed{tie}", "Both are fine.",
                      "\\boxed{12}", "<think>unfinished reasoning about response 1"] {
            XCTAssertNil(CriticVerdict.read(reply).position, reply)
        }
    }

    func testThePromptCarriesTheQuestionBothResponsesAndTheFormat() {
        let text = CriticPrompt.text(question: "What is 2 + 2? ", first: " 4 ", second: "5")
        XCTAssertTrue(text.contains("[Question]\nWhat is 2 + 2?\n\n[Response 1]\n4\n\n[Response 2]\n5\n\n"))
        XCTAssertTrue(text.hasSuffix("The final answer MUST BE put in \\boxed{}."))
        XCTAssertTrue(text.contains("<think> </think>"))
    }
}
