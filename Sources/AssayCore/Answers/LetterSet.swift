import Foundation

/// Multiple-choice answers that may name several options (LogicVista's "B, D"). The official
/// comparison sorts both letter lists and requires them to be equal, so `{B, D}` is right and
/// `{B}` or `{B, C, D}` are wrong.
///
/// Extraction rules, first that decides wins (each named in `Extraction.method`):
/// 1. `letter_list`: the whole answer is a list of option letters: `B`, `B, D`, `B and D`,
///    `(B) (D)`, `BD`, `B) B.` (the letters of a list are read once each).
/// 2. `answer_phrase`: the last "answer is …", "Answer: …", "options … are …" followed by a
///    letter list.
/// 3. `number`: the whole answer is one integer (a few LogicVista answers are numbers).
/// 4. the single-letter rules of `ChoiceExtraction` (leading letter, letter token, option text).
/// Otherwise `unparsed`: the official GPT extractor's "Z" (no option chosen) is never guessed.
/// The answer is written `B, D` (sorted, upper-case).
public enum LetterSet {
    /// Gold answers as the official script reads them: split on ", ", upper-cased, sorted.
    public static func gold(_ answer: String) -> [String] {
        answer.components(separatedBy: ",")
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines).uppercased() }
            .filter { !$0.isEmpty }
            .sorted()
    }

    /// The sorted list written as the extraction stores it.
    public static func format(_ letters: [String]) -> String {
        Array(Set(letters)).sorted().joined(separator: ", ")
    }

    public static func extract(_ response: String, labels: [String], options: [AnswerOption] = []) -> Extraction {
        let (text, source) = ReasoningText.finalAnswer(response)
        let prefix = source == "boxed" ? "boxed_" : ""
        let cleaned = ChoiceExtraction.clean(text)
        if cleaned.isEmpty { return .unparsed(reason: "empty response") }
        let labelSet = Set(labels)
        if let letters = letterList(cleaned, labels: labelSet, allowLowercase: true) {
            return .answer(format(letters), method: prefix + "letter_list")
        }
        let phrases = answerPhrase.findAll(in: text)
        for candidate in phrases.reversed() {
            if let letters = leadingLetterList(candidate, labels: labelSet) {
                return .answer(format(letters), method: prefix + "answer_phrase")
            }
        }
        if wholeNumber.matchesEntirely(cleaned) {
            return .answer(cleaned, method: prefix + "number")
        }
        switch ChoiceExtraction.extract(text, labels: labels, options: options) {
        case .answer(let letter, let method):
            return .answer(letter, method: method)
        case .unparsed(let reason):
            return .unparsed(reason: reason)
        }
    }

    /// Set equality of the extracted and gold lists (case-insensitive, order-free).
    public static func matches(_ extracted: String, gold: String) -> Bool {
        let predicted = Self.gold(extracted)
        let expected = Self.gold(gold)
        return !expected.isEmpty && Set(predicted) == Set(expected) && predicted.count == Set(predicted).count
    }

    // MARK: - Rules

    private static let wholeNumber = Pattern(#"-?\d+"#)
    /// Text after an answer phrase, up to the end of its line.
    private static let answerPhrase = Pattern(
        #"(?i:final answers?|correct answers?|correct options?|correct choices?|answers?|options?|choices?)(?:\s+(?i:is|are|would be|should be|will be))?\s*[:：]?\s*([^\n]*)"#)
    private static let conjunctions = Pattern(#"\b(?:and|or)\b"#, caseInsensitive: true)

    /// Letters separated by commas, "and", spaces or nothing (`BD`), each optionally in
    /// parentheses or followed by `)`, `.` or `:`, with nothing else around them but a final period.
    /// Lower-case letters count only as separate one-letter words (`b, d`, never `bad`).
    static func letterList(_ text: String, labels: Set<String>, allowLowercase: Bool) -> [String]? {
        var body = text.trimmingCharacters(in: .whitespacesAndNewlines)
        while let last = body.last, last == "." || last == "!" { body.removeLast() }
        guard !body.isEmpty else { return nil }
        body = conjunctions.replacing(in: body, with: " ")
        for separator in [",", ";", "/", "&", "+"] { body = body.replacingOccurrences(of: separator, with: " ") }
        var letters: [String] = []
        for token in TextMatching.words(body) {
            var core = Substring(token)
            if core.first == "(" || core.first == "[" { core = core.dropFirst() }
            while let last = core.last, last == ")" || last == "]" || last == "." || last == ":" { core = core.dropLast() }
            guard !core.isEmpty else { return nil }
            if core.count == 1, let c = core.first, let label = normalizedLabel(c, labels: labels, allowLowercase: allowLowercase) {
                letters.append(label)
            } else if core.count > 1, core.allSatisfy({ labels.contains(String($0)) }) {
                letters += core.map(String.init)
            } else {
                return nil
            }
        }
        guard !letters.isEmpty else { return nil }
        var unique: [String] = []
        for letter in letters where !unique.contains(letter) { unique.append(letter) }
        return unique
    }

    /// The letters of `text` when it is nothing but a list of option letters (`C\nD`, `(B)`,
    /// `A, C`), upper-case only; `nil` otherwise.
    public static func letters(in text: String, labels: [String]) -> [String]? {
        letterList(text, labels: Set(labels), allowLowercase: false)
    }

    /// A letter list at the start of `text`, ending at a period, comma + word, or line end.
    static func leadingLetterList(_ text: String, labels: Set<String>) -> [String]? {
        var candidate = text.trimmingCharacters(in: .whitespaces)
        // Stop at the first sentence break after the list ("B and D. Because …").
        if let range = candidate.range(of: #"[.!;](\s|$)|\s-\s|:\s"#, options: .regularExpression) {
            candidate = String(candidate[..<range.lowerBound])
        }
        while candidate.hasSuffix("*") || candidate.hasSuffix("\"") { candidate.removeLast() }
        while candidate.hasPrefix("*") || candidate.hasPrefix("\"") { candidate.removeFirst() }
        return letterList(candidate, labels: labels, allowLowercase: false)
    }

    private static func normalizedLabel(_ c: Character, labels: Set<String>, allowLowercase: Bool) -> String? {
        let s = String(c)
        if labels.contains(s) { return s }
        if allowLowercase, c.isLowercase, labels.contains(s.uppercased()) { return s.uppercased() }
        return nil
    }
}
