import AssayCore
import Foundation

/// MMMU (Yue et al., 2024) with the official rules of `mmmu/utils/eval_utils.py`:
/// `parse_multi_choice_response` for multiple choice and `parse_open_response` + `eval_open`
/// for open questions. One deviation, on purpose: where the official parser picks a random
/// option because it found none, Assay records `unparsed` (scored wrong and counted).
public struct MMMUScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    /// Labels used when a row carries no option columns (MMMU has at most nine options).
    static let defaultChoices = ["A", "B", "C", "D", "E", "F", "G", "H", "I"]

    static func isMultipleChoice(_ item: Item) -> Bool {
        (item.meta("question_type") ?? "multiple-choice") == "multiple-choice"
    }

    public func templateVariables(for item: Item) -> [String: String] {
        ["mmmu_instruction": Self.isMultipleChoice(item)
            ? "Answer with the option's letter from the given choices directly."
            : "Answer the question using a single word or phrase."]
    }

    public func extract(_ response: String, item: Item) -> Extraction {
        let (text, source) = ReasoningText.finalAnswer(response)
        let prefix = source == "boxed" ? "boxed_" : ""
        if Self.isMultipleChoice(item) {
            let choices = item.options.isEmpty ? Self.defaultChoices : item.optionLabels
            let index2ans = Dictionary(item.options.map { ($0.label, $0.text) }, uniquingKeysWith: { a, _ in a })
            guard let parsed = Self.parseMultiChoice(text, allChoices: choices, index2ans: index2ans) else {
                return .unparsed(reason: "no option found (the official parser would pick one at random)")
            }
            return .answer(parsed.choice, method: prefix + parsed.method)
        }
        let predictions = Self.parseOpen(text)
        return .answer(Self.encode(predictions), method: prefix + "open")
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        if Self.isMultipleChoice(item) {
            return .binary(item.answers.contains(answer))
        }
        // Our own open extraction is stored as a JSON list; an imported (already parsed)
        // prediction goes through parse_open_response, as main_eval_only.py does.
        let predictions = extraction.method.hasSuffix("open") ? Self.decode(answer) : Self.parseOpen(answer)
        return .binary(Self.evalOpen(gold: item.answers, predictions: predictions))
    }

    // MARK: - Multiple choice (parse_multi_choice_response)

    static func parseMultiChoice(_ input: String, allChoices: [String], index2ans: [String: String]) -> (choice: String, method: String)? {
        var response = input
        for char in [",", ".", "!", "?", ";", ":", "'"] {
            response = pythonStrip(response, Character(char))
        }
        response = " " + response + " "
        var candidates: [String] = []
        var withBrackets = false
        var byIndex = true
        for choice in allChoices where response.contains("(\(choice))") {
            candidates.append(choice)
            withBrackets = true
        }
        if candidates.isEmpty {
            for choice in allChoices where response.contains(" \(choice) ") { candidates.append(choice) }
        }
        let lowered = response.lowercased()
        if candidates.isEmpty, TextMatching.words(response).count > 5 {
            for choice in allChoices {
                guard let text = index2ans[choice] else { continue }
                if lowered.contains(text.lowercased()) {
                    candidates.append(choice)
                    byIndex = false
                }
            }
        }
        if candidates.isEmpty { return nil }
        if candidates.count == 1 { return (candidates[0], byIndex ? "mmmu_letter" : "mmmu_option_text") }
        // Several candidates: the one mentioned last wins (np.argmax keeps the first of ties).
        func lastOffset(_ needle: String, in haystack: String) -> Int {
            guard !needle.isEmpty, let range = haystack.range(of: needle, options: .backwards) else {
                return needle.isEmpty ? haystack.unicodeScalars.count : -1
            }
            return haystack.unicodeScalars.distance(from: haystack.unicodeScalars.startIndex, to: range.lowerBound)
        }
        let offsets: [Int] = candidates.map { candidate in
            if byIndex {
                return withBrackets ? lastOffset("(\(candidate))", in: response) : lastOffset(" \(candidate) ", in: response)
            }
            return lastOffset(index2ans[candidate]?.lowercased() ?? "", in: lowered)
        }
        var best = 0
        for i in offsets.indices where offsets[i] > offsets[best] { best = i }
        return (candidates[best], byIndex ? "mmmu_last_letter" : "mmmu_last_option_text")
    }

    /// Python's `str.strip(char)`.
    static func pythonStrip(_ s: String, _ c: Character) -> String {
        var sub = Substring(s)
        while sub.first == c { sub.removeFirst() }
        while sub.last == c { sub.removeLast() }
        return String(sub)
    }

    // MARK: - Open questions (parse_open_response, eval_open)

    /// A normalised prediction: a number (rounded to 2 decimals) or a lower-case string.
    enum Prediction: Hashable {
        case number(Double)
        case text(String)
    }

    private static let subResponseSplit = Pattern(#"\.\s(?=[A-Z])|\n"#)
    private static let numbersWithCommas = Pattern(#"-?\b\d{1,3}(?:,\d{3})+\b"#)
    private static let numbersScientific = Pattern(#"-?\d+(?:\.\d+)?[eE][+-]?\d+"#)
    private static let numbersSimple = Pattern(#"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])"#)

    static func parseOpen(_ input: String) -> [Prediction] {
        let keyResponses = keySubResponses(input)
        var predictions = keyResponses
        for response in keyResponses {
            predictions += extractNumbers(response)
        }
        var seen = Set<Prediction>()
        var result: [Prediction] = []
        for prediction in predictions.flatMap(normalize) where seen.insert(prediction).inserted {
            result.append(prediction)
        }
        return result
    }

    private static func keySubResponses(_ input: String) -> [String] {
        let response = pythonStrip(input.trimmingCharacters(in: .whitespacesAndNewlines), ".").lowercased()
        let subResponses = subResponseSplit.split(response)
        var indicators = ["could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result "]
        var keyResponses: [String] = []
        for (index, sub) in subResponses.enumerated() {
            if index == subResponses.count - 1 { indicators.append("=") }
            var shortest: String?
            for indicator in indicators where sub.contains(indicator) {
                let tail = (sub.components(separatedBy: indicator).last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
                if shortest == nil || shortest!.isEmpty || tail.count < shortest!.count {
                    shortest = tail
                }
            }
            if let key = shortest, !key.isEmpty,
               ![":", ",", ".", "!", "?", ";", "'"].contains(key.trimmingCharacters(in: .whitespacesAndNewlines)) {
                keyResponses.append(key)
            }
        }
        return keyResponses.isEmpty ? [response] : keyResponses
    }

    static func extractNumbers(_ text: String) -> [String] {
        numbersWithCommas.findAll(in: text) + numbersScientific.findAll(in: text) + numbersSimple.findAll(in: text)
    }

    /// `normalize_str`: numbers (commas removed) become floats rounded to 2 places; other text is
    /// lower-cased, and a single character gets a space on either side to avoid trivial matches.
    static func normalize(_ input: String) -> [Prediction] {
        let string = input.trimmingCharacters(in: .whitespacesAndNewlines)
        if let value = PythonNumber.parseFloat(string.replacingOccurrences(of: ",", with: "")) {
            return [.number(PythonNumber.round(value, digits: 2))]
        }
        let lowered = string.lowercased()
        if lowered.count == 1 { return [.text(" " + lowered), .text(lowered + " ")] }
        return [.text(lowered)]
    }

    static func evalOpen(gold: [String], predictions: [Prediction]) -> Bool {
        let normalizedGold = gold.flatMap(normalize)
        for prediction in predictions {
            switch prediction {
            case .text(let text):
                for case .text(let answer) in normalizedGold where text.contains(answer) { return true }
            case .number(let value):
                if normalizedGold.contains(.number(value)) { return true }
            }
        }
        return false
    }

    // The open-answer extraction is stored as a JSON array of strings and numbers.
    static func encode(_ predictions: [Prediction]) -> String {
        let values: [JSONValue] = predictions.map {
            switch $0 {
            case .number(let value): return .number(value)
            case .text(let text): return .string(text)
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        guard let data = try? encoder.encode(values) else { return "[]" }
        return String(decoding: data, as: UTF8.self)
    }

    static func decode(_ text: String) -> [Prediction] {
        guard let values = try? JSONDecoder().decode([JSONValue].self, from: Data(text.utf8)) else {
            return normalize(text)
        }
        return values.compactMap {
            switch $0 {
            case .number(let value): return .number(value)
            case .string(let text): return .text(text)
            default: return nil
            }
        }
    }
}
