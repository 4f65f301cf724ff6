import AssayCore
import Foundation

/// MathVista (Lu et al., 2024) with the official scoring of `evaluation/calculate_score.py`:
/// `normalize_extracted_answer` (choices by letter or, failing that, the closest option by
/// Levenshtein distance; integers via `int(float(x))`; floats via `round(float(x), precision)`;
/// lists as text) and `safe_equal`.
///
/// The official extractor is GPT-4 with rules first (`extract_answer.py`). Assay applies those
/// rules (response equal to a choice, `int(response)`, `float(response)`, `The answer is "…".`),
/// accepts a short one-line response as the answer itself (what the GPT extractor returns), reads
/// "answer is …" phrases and `\boxed{}`, and otherwise leaves the response `unparsed` for a judge.
public struct MathVistaScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    /// Longest one-line response taken as an already-extracted answer.
    static let shortAnswerLimit = 200

    public func templateVariables(for item: Item) -> [String: String] {
        let choices = Self.choices(item)
        return [
            "mathvista_hint": Self.hint(item),
            "choices": choices.enumerated().map { "(\(Character(UnicodeScalar(65 + $0.offset)!))) \($0.element)" }
                .joined(separator: "\n"),
        ]
    }

    public func extract(_ response: String, item: Item) -> Extraction {
        let (text, source) = ReasoningText.finalAnswer(response)
        let prefix = source == "boxed" ? "boxed_" : ""
        if text.isEmpty { return .unparsed(reason: "empty response") }
        let choices = Self.choices(item)
        let answerType = item.meta("answer_type") ?? "text"
        if Self.isMultiChoice(item), choices.contains(text) { return .answer(text, method: prefix + "choice_text") }
        if answerType == "integer", let value = Int(text.trimmingCharacters(in: .whitespaces)) {
            return .answer(String(value), method: prefix + "integer")
        }
        if answerType == "float", let value = PythonNumber.parseFloat(text) {
            return .answer(PythonNumber.repr(value), method: prefix + "float")
        }
        if let quoted = Self.quotedAnswer.firstMatch(in: text, group: 1) {
            return .answer(quoted, method: prefix + "quoted_answer")
        }
        if !text.contains("\n"), text.count <= Self.shortAnswerLimit {
            return .answer(text, method: prefix + "short_answer")
        }
        if Self.isMultiChoice(item) {
            let labels = (0..<choices.count).map { String(Character(UnicodeScalar(65 + $0)!)) }
            if let letter = Self.letterPhrase.lastMatch(in: text, group: 1), labels.contains(letter) {
                return .answer(letter, method: prefix + "answer_phrase")
            }
        } else if let value = Self.valuePhrase.lastMatch(in: text, group: 1) {
            return .answer(value.trimmingCharacters(in: .whitespaces), method: prefix + "answer_phrase")
        }
        return .unparsed(reason: "no short answer or answer phrase")
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        let normalized = Self.normalize(answer, item: item)
        return .binary(normalized.value != nil && normalized.value == item.answer, normalized: normalized.value)
    }

    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        let multiChoice = results.filter { Self.isMultiChoice($0.item) && !$0.extraction.isUnparsed }
        guard !multiChoice.isEmpty else { return [:] }
        let closest = multiChoice.filter { Self.normalize($0.extraction.answer ?? "", item: $0.item).closestOption }
        // How often the official closest-option rule chose the answer; a high rate means the
        // extractions were not option letters or texts.
        return ["closest_option_rate": Double(closest.count) / Double(results.count) * 100]
    }

    // MARK: - Official normalisation

    private static let parenthesisedLetter = Pattern(#"\(([a-zA-Z])\)"#)
    private static let quotedAnswer = Pattern(#"The answer is "(.*)"\."#)
    private static let letterPhrase = Pattern(
        #"(?i:answer|option|choice)(?:\s+(?i:is))?\s*[:：]?\s*[\(\[]?([A-Z])(?![A-Za-z0-9])"#)
    private static let valuePhrase = Pattern(#"(?i:final answer|answer)(?:\s+(?i:is))?\s*[:：]\s*([^\n]+?)\s*\.?\s*$"#)

    static func isMultiChoice(_ item: Item) -> Bool { item.meta("question_type") == "multi_choice" }

    static func choices(_ item: Item) -> [String] {
        if !item.options.isEmpty { return item.options.map(\.text) }
        return []
    }

    /// `normalize_extracted_answer`; `closestOption` says the Levenshtein fallback decided.
    static func normalize(_ extraction: String, item: Item) -> (value: String?, closestOption: Bool) {
        if isMultiChoice(item) {
            let choices = choices(item)
            guard !choices.isEmpty else { return (nil, false) }
            var text = extraction.trimmingCharacters(in: .whitespacesAndNewlines)
            if let letter = parenthesisedLetter.firstMatch(in: text, group: 1) { text = letter.uppercased() }
            let letters = (0..<choices.count).map { String(Character(UnicodeScalar(65 + $0)!)) }
            if let index = letters.firstIndex(of: text) { return (choices[index], false) }
            var best = 0
            var bestDistance = Int.max
            for (index, choice) in choices.enumerated() {
                let distance = TextMatching.levenshtein(text, choice)
                if distance < bestDistance { best = index; bestDistance = distance }
            }
            return (choices[best], true)
        }
        switch item.meta("answer_type") {
        case "integer":
            return (PythonNumber.integerString(extraction), false)
        case "float":
            guard let precision = item.meta("precision").flatMap({ PythonNumber.parseFloat($0) }),
                  let value = PythonNumber.parseFloat(extraction) else { return (nil, false) }
            return (PythonNumber.repr(PythonNumber.round(value, digits: Int(precision))), false)
        case "list":
            return (extraction, false)
        default:
            return (extraction, false)
        }
    }

    /// The hint line of the official query (`build_query.py`, solution mode).
    static func hint(_ item: Item) -> String {
        if isMultiChoice(item) {
            return "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."
        }
        switch (item.meta("answer_type"), item.meta("precision")) {
        case ("integer", _):
            return "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end."
        case ("float", "1"):
            return "Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end."
        case ("float", "2"):
            return "Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end."
        case ("list", _):
            return "Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end."
        default:
            return "Hint: Please answer the question and provide the final answer at the end."
        }
    }
}
