import Foundation

/// Finds which multiple-choice option a free-form response picks.
///
/// The rules, in order (the first that decides wins; each is named in `Extraction.method`):
/// 1. `letter`: the whole answer is a label, alone or wrapped: `B`, `(B)`, `[B]`, `B.`, `**B**`.
/// 2. `leading_letter`: the answer starts with a label followed by `)`, `.` or `:`: `(B) 0.21`,
///    `B: neither`, `C. Paris`.
/// 3. `answer_phrase`: the last "answer is X", "Answer: (X)", "correct option is X", ….
/// 4. `letter_token`: exactly one label stands alone as a word once punctuation is removed
///    (VLMEvalKit's `can_infer_option`); a capital "A" used as an article does not count.
/// 5. `option_text`: the answer equals one option's text, or contains exactly one option's text
///    (VLMEvalKit's `can_infer_text`).
/// Otherwise the response is `unparsed`, with the reason (empty, ambiguous, no option found).
/// `\boxed{}` content and text after `</think>` are read first; the method is then prefixed
/// `boxed_`.
public enum ChoiceExtraction {
    public static func extract(_ response: String, options: [AnswerOption]) -> Extraction {
        extract(response, labels: options.map(\.label), options: options)
    }

    public static func extract(_ response: String, labels: [String], options: [AnswerOption] = []) -> Extraction {
        let (text, source) = ReasoningText.finalAnswer(response)
        let prefix = source == "boxed" ? "boxed_" : ""
        let cleaned = clean(text)
        if cleaned.isEmpty { return .unparsed(reason: "empty response") }
        let labelSet = Set(labels)

        if let label = wholeLabel(cleaned, labels: labelSet) { return .answer(label, method: prefix + "letter") }
        if let label = leadingLetter.firstMatch(in: cleaned, group: 1), labelSet.contains(label),
           !labels.contains(where: { $0 != label && cleaned.contains("(\($0))") }) {
            return .answer(label, method: prefix + "leading_letter")
        }
        if let label = answerPhrase.lastMatch(in: text, group: 1), labelSet.contains(label) {
            return .answer(label, method: prefix + "answer_phrase")
        }
        let tokens = letterTokens(text, labels: labelSet)
        if tokens.count == 1, let label = tokens.first {
            return .answer(label, method: prefix + "letter_token")
        }
        if let label = optionText(cleaned, options: options) {
            return .answer(label, method: prefix + "option_text")
        }
        if tokens.count > 1 {
            return .unparsed(reason: "ambiguous: " + labels.filter(tokens.contains).joined(separator: ", "))
        }
        return .unparsed(reason: "no option found")
    }

    // MARK: - Rules

    private static let leadingLetter = Pattern(#"^[\(\[]?([A-Z])(?:[\)\]][\s\.:]?|[\.:])(?:\s|$)"#)

    private static let answerPhrase = Pattern(
        #"(?i:final answer|correct answer|best answer|answer|correct option|correct choice|best option|option|choice)(?:\s+(?i:is|would be|should be|will be))?\s*[:：]?\s*(?i:option\s*)?\**\s*[\(\[]?([A-Z])(?![A-Za-z0-9])"#)

    /// Strips whitespace, markdown emphasis, quotes and a trailing period.
    static func clean(_ text: String) -> String {
        var result = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let wrappers: Set<Character> = ["*", "\"", "'", "`", "_"]
        while let first = result.first, wrappers.contains(first) { result.removeFirst() }
        while let last = result.last, wrappers.contains(last) || last == "." { result.removeLast() }
        return result.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func wholeLabel(_ text: String, labels: Set<String>) -> String? {
        var core = text
        if core.count >= 3, let first = core.first, let last = core.last,
           (first == "(" && last == ")") || (first == "[" && last == "]") {
            core = String(core.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
        }
        if core.hasSuffix(")") || core.hasSuffix(":") { core = String(core.dropLast()) }
        if labels.contains(core) { return core }
        // A single lower-case letter standing alone is the same label.
        if core.count == 1, labels.contains(core.uppercased()) { return core.uppercased() }
        return nil
    }

    /// Labels that stand alone as words once `.()[],:;!*#{}` are removed.
    static func letterTokens(_ text: String, labels: Set<String>) -> Set<String> {
        var spaced = ""
        for character in text {
            spaced.append(".()[],:;!*#{}".contains(character) ? " " : character)
        }
        let tokens = TextMatching.words(spaced)
        var found = Set<String>()
        for (index, token) in tokens.enumerated() where labels.contains(token) {
            if token == "A", index + 1 < tokens.count, isArticleUse(text: text, following: tokens[index + 1]) {
                continue
            }
            if token == "I", index + 1 < tokens.count, let next = tokens[index + 1].first, next.isLowercase {
                continue  // the pronoun
            }
            found.insert(token)
        }
        return found
    }

    /// "A cat sits" uses "A" as an article; "(A) cat", "A." or "A or C" does not.
    private static func isArticleUse(text: String, following next: String) -> Bool {
        guard let first = next.first, first.isLowercase, !notAfterArticle.contains(next) else { return false }
        return text.range(of: "A " + next) != nil && text.range(of: "(A) " + next) == nil
    }

    /// Words that follow a letter answer but never the article "a".
    private static let notAfterArticle: Set<String> = [
        "or", "and", "is", "was", "are", "seems", "looks", "appears", "because", "since", "as", "then",
        "vs", "versus", "would", "should", "could", "might", "must", "will", "can", "to", "from", "in",
    ]

    private static func optionText(_ text: String, options: [AnswerOption]) -> String? {
        let candidates = options.filter { !$0.text.trimmingCharacters(in: .whitespaces).isEmpty }
        guard !candidates.isEmpty else { return nil }
        let lowered = text.lowercased()
        let normalized = TextMatching.normalize(text)
        if let exact = candidates.first(where: {
            $0.text.lowercased().trimmingCharacters(in: .whitespaces) == lowered
                || (!normalized.isEmpty && TextMatching.normalize($0.text) == normalized)
        }) {
            let exactMatches = candidates.filter {
                $0.text.lowercased().trimmingCharacters(in: .whitespaces) == exact.text.lowercased().trimmingCharacters(in: .whitespaces)
            }
            return exactMatches.count == 1 ? exact.label : nil
        }
        let contained = candidates.filter { option in
            let needle = option.text.lowercased().trimmingCharacters(in: .whitespaces)
            guard let range = lowered.range(of: needle) else { return false }
            if needle.count > 3 { return true }
            // Short option texts ("no", "5") must stand as a word.
            let before = range.lowerBound == lowered.startIndex ? nil : lowered[lowered.index(before: range.lowerBound)]
            let after = range.upperBound == lowered.endIndex ? nil : lowered[range.upperBound]
            return !(before?.isLetter ?? false || before?.isNumber ?? false)
                && !(after?.isLetter ?? false || after?.isNumber ?? false)
        }
        if contained.count == 1 { return contained[0].label }
        // "quarter to" contains "quarter": keep the one that contains every other match.
        if contained.count > 1 {
            let longest = contained.max { $0.text.count < $1.text.count }!
            let longestText = longest.text.lowercased()
            if contained.allSatisfy({ $0.label == longest.label || longestText.contains($0.text.lowercased()) }) {
                return longest.label
            }
        }
        return nil
    }
}

/// Reads a yes/no answer (VLMEvalKit's `YOrN_Extraction`): "Yes" when the word yes appears and no
/// does not, "No" the other way round, unparsed otherwise.
public enum YesNoExtraction {
    public static func extract(_ response: String) -> Extraction {
        let (text, source) = ReasoningText.finalAnswer(response)
        let method = source == "boxed" ? "boxed_yes_no" : "yes_no"
        var spaced = ""
        for character in text.lowercased() {
            spaced.append(character.isLetter || character.isNumber ? character : " ")
        }
        let words = Set(TextMatching.words(spaced))
        switch (words.contains("yes"), words.contains("no")) {
        case (true, false): return .answer("Yes", method: method)
        case (false, true): return .answer("No", method: method)
        case (true, true): return .unparsed(reason: "both yes and no")
        case (false, false):
            return text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
                ? .unparsed(reason: "empty response") : .unparsed(reason: "neither yes nor no")
        }
    }

    /// Normalises a gold yes/no answer ("yes", "Yes", "YES") to "Yes"/"No", or `nil`.
    public static func normalizeGold(_ answer: String) -> String? {
        switch answer.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() {
        case "yes", "y", "true": return "Yes"
        case "no", "n", "false": return "No"
        default: return nil
        }
    }
}
