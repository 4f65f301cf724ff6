import AssayCore
import XCTest

/// Multiple-choice extraction on real answer strings: MMStar (LLaVA-NeXT-Yi-34B), BLINK (GPT-4o,
/// LLaVA-1.5), and MMMU (Qwen-VL) outputs from ../shared/fixtures, plus the awkward cases.
final class ChoiceExtractionTests: XCTestCase {
    let abcd = ["A", "B", "C", "D"]

    func extract(_ text: String, _ options: [String] = []) -> Extraction {
        if options.isEmpty { return ChoiceExtraction.extract(text, labels: abcd) }
        let labelled = options.enumerated().map { AnswerOption(label: String(UnicodeScalar(65 + $0.offset)!), text: $0.element) }
        return ChoiceExtraction.extract(text, options: labelled)
    }

    func testBareAndWrappedLetters() {
        XCTAssertEqual(extract("B").answer, "B")
        XCTAssertEqual(extract("(A)").answer, "A")
        XCTAssertEqual(extract("A.").answer, "A")
        XCTAssertEqual(extract("**C**").answer, "C")
        XCTAssertEqual(extract("[D]").answer, "D")
        XCTAssertEqual(extract(" b ").answer, "B")
        XCTAssertEqual(extract("B").method, "letter")
    }

    func testLeadingLetterWithOptionText() {
        // MMStar predictions of LLaVA-NeXT-Yi-34B.
        XCTAssertEqual(extract("B: neither; their concentrations are the same").answer, "B")
        XCTAssertEqual(extract("(B) 0.21").answer, "B")
        XCTAssertEqual(extract("A: if anyone has super mario maker 2, make sure to stop by my account").answer, "A")
        // BLINK GPT-4o.
        XCTAssertEqual(extract("(D) 1\n\nThere is one blue float visible in the image.").answer, "D")
        XCTAssertEqual(extract("(D) 1\n\nThere is one blue float visible in the image.").method, "leading_letter")
    }

    func testAnswerPhrases() {
        XCTAssertEqual(extract("The answer is B").answer, "B")
        XCTAssertEqual(extract("The number of colored tiles above the sink is (A) 6.").answer, "A")
        XCTAssertEqual(extract("The green bowl contains 3 big nuts. \n\nThe correct answer is (A) 3.").answer, "A")
        XCTAssertEqual(extract("The image shows two black suitcases being pulled. Therefore, the correct answer is:\n\n(A) 2").answer, "A")
        XCTAssertEqual(extract("Answer: C").answer, "C")
        XCTAssertEqual(extract("The BCR in low endemic area was 57.48. Therefore, the answer is (C).").answer, "C")
        // The last stated answer wins over an option merely mentioned earlier.
        XCTAssertEqual(extract("Option A looks tempting, but the correct option is D.").answer, "D")
    }

    func testOptionTextInsteadOfLetter() {
        let options = ["demand curve", "Phillips curve", "production possibilities frontier", "aggregate supply curve"]
        XCTAssertEqual(extract("The figure illustrates a Phillips curve.", options).answer, "B")
        XCTAssertEqual(extract("The figure illustrates a Phillips curve.", options).method, "option_text")
        XCTAssertEqual(extract("Singly linked list", ["Singly linked list", "Doubly linked list", "Array"]).answer, "A")
        // "quarter to" contains "quarter": the longer option that contains the other wins.
        XCTAssertEqual(extract("It is quarter to six.", ["half", "quarter", "o'clock", "quarter to", "quarter past"]).answer, "D")
    }

    func testTwoLettersAreAmbiguousAndNotGuessed() {
        let result = extract("(A) perfect (C) diminished (D) augmented", ["perfect", "major", "diminished", "augmented"])
        XCTAssertTrue(result.isUnparsed, "\(result)")
        let plain = extract("It is either A or C.")
        XCTAssertTrue(plain.isUnparsed)
        if case .unparsed(let reason) = plain { XCTAssertTrue(reason.hasPrefix("ambiguous")) }
    }

    func testNoAnswerIsUnparsed() {
        XCTAssertTrue(extract("").isUnparsed)
        XCTAssertTrue(extract("I cannot see the image.").isUnparsed)
        XCTAssertTrue(extract("Sorry, I can't help with images of people yet.").isUnparsed)
        if case .unparsed(let reason) = extract("   ") { XCTAssertEqual(reason, "empty response") } else { XCTFail() }
    }

    func testArticleAIsNotAnAnswer() {
        XCTAssertTrue(extract("A cat is sitting on the mat.").isUnparsed)
        XCTAssertEqual(extract("A cat is sitting on the mat, so the answer is C.").answer, "C")
        XCTAssertEqual(extract("I think the answer is B.").answer, "B")
    }

    func testLabelsOutsideTheOptionsAreIgnored() {
        // Only A–C exist: a D cannot be the answer.
        XCTAssertTrue(ChoiceExtraction.extract("D", labels: ["A", "B", "C"]).isUnparsed)
    }

    func testThinkAndBoxed() {
        let text = "<think>Maybe A, maybe B. Let me check C.</think>The final answer is \\boxed{B}."
        XCTAssertEqual(extract(text).answer, "B")
        XCTAssertEqual(extract(text).method, "boxed_letter")
        XCTAssertEqual(extract("<think>A or C</think>\nAnswer: C").answer, "C")
        // An unfinished thought has no answer in it.
        XCTAssertTrue(extract("<think>It is clearly A because").isUnparsed)
    }
}

final class ReasoningTextTests: XCTestCase {
    func testStripThink() {
        XCTAssertEqual(ReasoningText.stripThink("<think>x</think> answer"), "answer")
        XCTAssertEqual(ReasoningText.stripThink("reasoning opened in the prompt</think>B"), "B")
        XCTAssertEqual(ReasoningText.stripThink("a<think>x</think>b<think>y</think>c"), "abc")
        XCTAssertEqual(ReasoningText.stripThink("no tags"), "no tags")
    }

    func testLastBoxedWithNestedBraces() {
        XCTAssertEqual(ReasoningText.lastBoxed("so \\boxed{\\frac{1}{2}} and then \\boxed{3}"), "3")
        XCTAssertEqual(ReasoningText.lastBoxed("x = \\boxed{\\frac{1}{2}}"), "\\frac{1}{2}")
        XCTAssertEqual(ReasoningText.lastBoxed("\\boxed {42}"), "42")
        XCTAssertNil(ReasoningText.lastBoxed("no box"))
        // A box cut off by the token limit is not an answer; the earlier complete one is.
        XCTAssertEqual(ReasoningText.lastBoxed("\\boxed{1} then \\boxed{2"), "1")
        XCTAssertEqual(ReasoningText.finalAnswer("\\boxed{\\text{B}}").text, "B")
    }
}

final class YesNoExtractionTests: XCTestCase {
    func testYesNo() {
        XCTAssertEqual(YesNoExtraction.extract("Yes").answer, "Yes")
        XCTAssertEqual(YesNoExtraction.extract("No, there is no dog.").answer, "No")
        XCTAssertEqual(YesNoExtraction.extract("yes.").answer, "Yes")
        XCTAssertTrue(YesNoExtraction.extract("Yes and no.").isUnparsed)
        XCTAssertTrue(YesNoExtraction.extract("Maybe.").isUnparsed)
        XCTAssertEqual(YesNoExtraction.extract("<think>no? yes?</think>\\boxed{No}").answer, "No")
        XCTAssertEqual(YesNoExtraction.normalizeGold("yes"), "Yes")
        XCTAssertNil(YesNoExtraction.normalizeGold("perhaps"))
    }
}
