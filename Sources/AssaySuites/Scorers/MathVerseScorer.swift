import AssayCore
import Foundation

/// MathVerse (Zhang et al., 2024), testmini, the "w/o" (answer-only) accuracy.
///
/// The official pipeline asks GPT to extract the answer (`extract_answer_s1.py`) and then either
/// compares it with the gold answer as a string (`--quick_match`) or asks GPT whether the two
/// agree (`score_answer_s2.py`). Assay's rule stands in for both steps:
///
/// - extraction: multiple choice with `ChoiceExtraction` (options read from the question's
///   `Choices:` block when it has one); free-form from the last `\boxed{}`, else the last
///   "answer is …"/"Answer: …", else the whole response when it is short (≤ 200 characters);
///   a long response without any of these is `unparsed` (a judge would be needed).
/// - matching: the official quick match (equal strings) first; then both sides normalised with
///   MATH-V's `find_math_answer` and stripped of units (`\mathrm{cm}^{2}`, `km`, degrees), and
///   compared as strings or, when both are arithmetic, as numbers rounded to two places.
///
/// Judge-only equivalences ("0.5 m" vs "50 cm", reordered expressions) are not recognised; the
/// suite README states the consequence.
public struct MathVerseScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    static let letters = ["A", "B", "C", "D", "E", "F"]
    static let shortAnswerLimit = 200

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        // VLMEvalKit stores the metadata dict as a Python repr; MathVerse_acc reads it the same way.
        if let raw = row.text("metadata"),
           let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(raw.replacingOccurrences(of: "'", with: "\"").utf8)) {
            if let subject = object["subject"]?.text { item.category = subject }
            if let subfield = object["subfield"]?.text { item.subcategory = subfield }
        }
        if item.options.isEmpty { item.options = Self.choices(inQuestion: row.text("question_for_eval") ?? item.question) }
    }

    static func isMultipleChoice(_ item: Item) -> Bool {
        if let type = item.meta("question_type") { return type.lowercased().hasPrefix("multi") }
        return letters.contains(item.answer.trimmingCharacters(in: .whitespaces))
    }

    /// The `Choices:` block of a MathVerse question (`A:40°`, `B. 60°`, one per line).
    static func choices(inQuestion question: String) -> [AnswerOption] {
        guard let range = question.range(of: "Choices:") else { return [] }
        var options: [AnswerOption] = []
        for line in question[range.upperBound...].split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard let first = trimmed.first, letters.contains(String(first)) else { continue }
            let rest = trimmed.dropFirst()
            guard let separator = rest.first, separator == ":" || separator == "." || separator == ")" else { continue }
            options.append(AnswerOption(label: String(first), text: rest.dropFirst().trimmingCharacters(in: .whitespaces)))
        }
        return options
    }

    // MARK: Extraction

    public func extract(_ response: String, item: Item) -> Extraction {
        if Self.isMultipleChoice(item) {
            let labels = item.options.isEmpty ? Array(Self.letters.prefix(5)) : item.optionLabels
            return ChoiceExtraction.extract(response, labels: labels, options: item.options)
        }
        return Self.freeFormAnswer(response)
    }

    private static let answerPhrase = Pattern(
        #"(?i:final answer|the answer|answer)\s*(?:is|:|：)\s*(?:\$\s*)?([^\n]+)"#)

    static func freeFormAnswer(_ response: String) -> Extraction {
        let (text, source) = ReasoningText.finalAnswer(response)
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { return .unparsed(reason: "empty response") }
        if source == "boxed" { return .answer(trimmed, method: "boxed") }
        if let phrase = answerPhrase.lastMatch(in: text, group: 1) {
            var answer = phrase.trimmingCharacters(in: .whitespaces)
            while let last = answer.last, last == "." || last == "*" { answer.removeLast() }
            while answer.hasPrefix("*") { answer.removeFirst() }
            answer = answer.trimmingCharacters(in: .whitespaces)
            if !answer.isEmpty { return .answer(answer, method: "answer_phrase") }
        }
        if trimmed.count <= shortAnswerLimit { return .answer(trimmed, method: "short_answer") }
        return .unparsed(reason: "long response without a boxed answer or an answer phrase")
    }

    // MARK: Scoring

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        let gold = item.answer
        if Self.isMultipleChoice(item) {
            var letter = answer.trimmingCharacters(in: .whitespacesAndNewlines)
            if extraction.method == "imported", case .answer(let parsed, _) = ChoiceExtraction.extract(answer, labels: Self.letters, options: item.options) {
                letter = parsed
            }
            return .binary(letter.uppercased() == gold.trimmingCharacters(in: .whitespaces).uppercased(), normalized: letter)
        }
        return .binary(Self.freeFormMatches(answer, gold: gold), normalized: Self.normalize(answer))
    }

    /// Quick match, then normalised text, then numbers rounded to two places.
    static func freeFormMatches(_ answer: String, gold: String) -> Bool {
        let a = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        let g = gold.trimmingCharacters(in: .whitespacesAndNewlines)
        if a == g { return true }
        let na = normalize(a), ng = normalize(g)
        if na.isEmpty || ng.isEmpty { return false }
        return na == ng || MathAnswer.isEquivalent(na, ng)
    }

    private static let unitCommand = Pattern(#"\\(?:mathrm|mathbf|text|textbf|operatorname)\{[^{}]*\}(?:\^\{?[23]\}?)?"#)
    private static let unitWord = Pattern(
        #"(?<=[0-9}])(?:cm|mm|km|m|kg|g|l|ml|units?|metres?|meters?|litres?|liters?|squareunits|cubicunits|degrees?)(?:\^\{?[23]\}?|²|³)?$"#)
    private static let degreeMark = Pattern(#"(?:°|掳|\^\{?\\circ\}?)"#)

    /// MATH-V's `find_math_answer` (lower case, value after `=`, no spaces or `$`), then units and
    /// degree marks removed.
    static func normalize(_ text: String) -> String {
        var s = MathAnswer.normalize(text)
        s = unitCommand.replacing(in: s, with: "")
        s = degreeMark.replacing(in: s, with: "")
        s = s.replacingOccurrences(of: "~", with: "")
        s = unitWord.replacing(in: s, with: "")
        return s.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
