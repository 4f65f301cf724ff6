import AssayCore
import Foundation

/// MathVerse (Zhang et al., 2024), testmini, the "w/o" (answer-only) accuracy.
///
/// The official pipeline asks GPT to extract the answer (`extract_answer_s1.py`) and then either
/// compares it with the gold answer as a string (`--quick_match`) or asks GPT whether the two
/// agree (`score_answer_s2.py`). Assay's rule stands in for both steps:
///
/// - extraction: multiple choice with `LetterSet` (a few questions ask for two letters; options
///   are read from the question's `Choices:` block when it has one, so an option's text counts
///   as its letter); free-form from the last `\boxed{}`, else the last
///   "answer is …"/"Answer: …", else the whole response when it is short (≤ 300 characters),
///   else its last line when that is short; otherwise `unparsed` (a judge would be needed).
/// - matching: the official quick match (equal strings) first; then the answer, its last line,
///   the part after its last "is", "=", "≈" or "approximately", and its last number are each
///   normalised with MATH-V's `find_math_answer`, stripped of units (`\mathrm{cm}^{2}`, `km`,
///   degrees) and compared with the normalised gold as strings or, when both are arithmetic, as
///   numbers rounded to two places. Any candidate matching counts (as the GPT judge reads a
///   sentence for its conclusion).
///
/// Multiple-choice golds are a letter, `(C)`, two letters on two lines (`C\nD`) or an option's
/// text (`False`, `090^\circ T`); all are read as a set of letters and compared as sets.
///
/// Judge-only equivalences ("0.5 m" vs "50 cm", reordered expressions) are not recognised; the
/// suite README states the consequence.
public struct MathVerseScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    static let letters = ["A", "B", "C", "D", "E", "F"]
    static let shortAnswerLimit = 300
    static let lastLineLimit = 200

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

    /// The `Choices:` (or `Choice:`) block of a MathVerse question (`A:40°`, `B. 60°`, one per line).
    static func choices(inQuestion question: String) -> [AnswerOption] {
        guard let range = question.range(of: "Choices:") ?? question.range(of: "Choice:") else { return [] }
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
            return LetterSet.extract(response, labels: Self.labels(item), options: item.options)
        }
        return Self.freeFormAnswer(response)
    }

    static func labels(_ item: Item) -> [String] {
        item.options.isEmpty ? Array(letters.prefix(5)) : item.optionLabels
    }

    /// The gold of a multiple-choice question as letters: a letter list (`D`, `(C)`, `C\nD`), or
    /// the label of the option whose text the gold repeats.
    static func goldLetters(_ item: Item) -> [String]? {
        let gold = item.answer.trimmingCharacters(in: .whitespacesAndNewlines)
        if let letters = LetterSet.letters(in: gold, labels: labels(item)) { return letters.sorted() }
        let target = normalize(gold)
        if let option = item.options.first(where: { normalize($0.text) == target }) { return [option.label] }
        return nil
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
        if let last = trimmed.split(separator: "\n").last?.trimmingCharacters(in: .whitespaces), last.count <= lastLineLimit {
            return .answer(last, method: "last_line")
        }
        return .unparsed(reason: "long response without a boxed answer or an answer phrase")
    }

    // MARK: Scoring

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        let gold = item.answer
        if Self.isMultipleChoice(item), let goldLetters = Self.goldLetters(item) {
            var letters = answer
            if extraction.method == "imported", case .answer(let parsed, _) = LetterSet.extract(answer, labels: Self.labels(item), options: item.options) {
                letters = parsed
            }
            return .binary(LetterSet.gold(letters) == goldLetters, normalized: letters)
        }
        return .binary(Self.freeFormMatches(answer, gold: gold), normalized: Self.normalize(answer))
    }

    /// Quick match, then each candidate reading of the answer against the normalised gold.
    static func freeFormMatches(_ answer: String, gold: String) -> Bool {
        let a = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        let g = gold.trimmingCharacters(in: .whitespacesAndNewlines)
        if a == g { return true }
        // One testmini gold is written twice on two lines ("-4.9\n-4.9"): each line is the answer.
        var golds = [g]
        if g.contains("\n") { golds += g.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
        for gold in golds {
            let ng = normalize(gold)
            if ng.isEmpty { continue }
            for candidate in candidates(a) {
                let na = normalize(candidate)
                if !na.isEmpty, na == ng || MathAnswer.isEquivalent(na, ng) { return true }
            }
        }
        return false
    }

    private static let conclusion = Pattern(#"^.*(?:\bis\b|=|≈|\\approx|approximately|:)\s*(.*?)\s*\.?\s*$"#)
    private static let lastNumber = Pattern(#"-?\d+(?:\.\d+)?"#)

    /// The answer, its last line, its conclusion after the last "is"/"="/"≈", its last number.
    static func candidates(_ answer: String) -> [String] {
        var result = [answer]
        if let line = answer.split(separator: "\n").last.map(String.init), line != answer { result.append(line) }
        if let tail = conclusion.firstMatch(in: result.last ?? answer, group: 1), !tail.isEmpty { result.append(tail) }
        if let number = lastNumber.lastMatch(in: answer) { result.append(number) }
        return result
    }

    private static let unitCommand = Pattern(#"\\(?:mathrm|mathbf|text|textbf|operatorname)\{[^{}]*\}(?:\^\{?[23]\}?)?"#)
    private static let unitWord = Pattern(
        #"(?<=[0-9}])(?:cm|mm|km|m|kg|g|l|ml|units?|metres?|meters?|litres?|liters?|squareunits|cubicunits|degrees?)(?:\^\{?[23]\}?|²|³)?$"#)
    private static let degreeMark = Pattern(#"(?:°|掳|\^\{?\\circ\}?)"#)

    /// MATH-V's `find_math_answer` (lower case, value after `=`, no spaces or `$`), then units and
    /// degree marks removed.
    static func normalize(_ text: String) -> String {
        var s = MathAnswer.normalize(unitCommand.replacing(in: text, with: ""))
        s = degreeMark.replacing(in: s, with: "")
        for delimiter in ["~", "\\(", "\\)", "\\[", "\\]"] { s = s.replacingOccurrences(of: delimiter, with: "") }
        s = unitWord.replacing(in: s, with: "")
        while s.hasSuffix(".") { s.removeLast() }
        return s.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
