import AssayCore
import Foundation

/// BLINK (Fu et al., 2024): answers are `(A)`…`(E)` and the official `evaluate.py` counts a
/// prediction right only when it equals the gold string exactly.
///
/// Extraction follows the rule part of BLINK's `analyze_answer`: a bare letter becomes `(X)`; a
/// response that is `(X)` stays; otherwise the `(X)` tokens among the whitespace-separated words
/// decide when exactly one of them appears (in the last paragraph, or in the whole response).
/// Where BLINK asks GPT-3.5 to match the answer, Assay applies its deterministic rules
/// (`ChoiceExtraction`) and reports `unparsed` when they fail (a `(Z)`, BLINK's "failed").
public struct BLINKScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    static let allLetters = ["A", "B", "C", "D", "E"]

    public func extract(_ response: String, item: Item) -> Extraction {
        let (text, source) = ReasoningText.finalAnswer(response)
        let prefix = source == "boxed" ? "boxed_" : ""
        let letters = item.options.isEmpty ? Self.allLetters : item.optionLabels
        let choices = letters.map { "(\($0))" }
        if letters.contains(text) { return .answer("(\(text))", method: prefix + "blink_letter") }
        if choices.contains(text) { return .answer(text, method: prefix + "blink_letter") }
        let words = Set(TextMatching.words(text))
        let lastParagraph = text.components(separatedBy: "\n\n").last ?? text
        let lastWords = Set(TextMatching.words(lastParagraph))
        let inAll = choices.filter(words.contains)
        let inLast = choices.filter(lastWords.contains)
        if !((inAll.count != 1 && inLast.count != 1) || inAll.isEmpty) {
            return .answer(inLast.count == 1 ? inLast[0] : inAll[0], method: prefix + "blink_tokens")
        }
        switch ChoiceExtraction.extract(text, labels: letters, options: item.options) {
        case .answer(let letter, let method): return .answer("(\(letter))", method: prefix + method)
        case .unparsed(let reason): return .unparsed(reason: reason)
        }
    }

    /// BLINK's published predictions say `(Z)` where its GPT-3.5 matcher found no option.
    public func imported(_ extraction: String, item: Item) -> Extraction {
        let text = extraction.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty || text == "(Z)" || text.hasPrefix("(Z) ") {
            return .unparsed(reason: "the imported extraction is BLINK's failure marker (Z)")
        }
        return .answer(extraction, method: "imported")
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        // Exact comparison, as evaluate.py does; a gold written as a bare letter means "(X)".
        let gold = item.answers.map { $0.count == 1 ? "(\($0))" : $0 }
        return .binary(gold.contains(answer))
    }
}
