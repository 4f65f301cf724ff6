import AssayCore
import Foundation

/// RealWorldQA (xAI, 2024): real-world driving and street images with multiple-choice questions
/// and a few short-answer ones ("Please answer directly with a single word or number."). xAI
/// published the data and scores but no scorer; the benchmark's evaluation is exact accuracy.
///
/// Rows with option columns are read with the letter rule (VLMEvalKit distributes RealWorldQA as
/// multiple choice). A row without options is a short answer: the response (reasoning removed,
/// surrounding quotes, emphasis and a final period stripped) must equal a gold answer ignoring
/// case, or equal it as a number ("3" and "3.0").
public struct RealWorldQAScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    public func extract(_ response: String, item: Item) -> Extraction {
        if !item.options.isEmpty { return ChoiceExtraction.extract(response, options: item.options) }
        let (text, source) = ReasoningText.finalAnswer(response)
        let cleaned = FreeTextAnswer.clean(text)
        if cleaned.isEmpty { return .unparsed(reason: "empty response") }
        if cleaned.contains("\n") { return .unparsed(reason: "more than a single word or number") }
        return .answer(cleaned, method: source == "boxed" ? "boxed_short_answer" : "short_answer")
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        if !item.options.isEmpty {
            let gold = Set(item.answers.compactMap { MultipleChoiceScorer.goldLabel($0, options: item.options) })
            return .binary(gold.contains(answer))
        }
        return .binary(item.answers.contains { Self.shortAnswerMatches(answer, gold: $0) })
    }

    static func shortAnswerMatches(_ prediction: String, gold: String) -> Bool {
        let p = prediction.trimmingCharacters(in: .whitespacesAndNewlines)
        let g = gold.trimmingCharacters(in: .whitespacesAndNewlines)
        if p.lowercased() == g.lowercased() { return true }
        if let pv = PythonNumber.parseFloat(p), let gv = PythonNumber.parseFloat(g) { return pv == gv }
        return false
    }
}
