import AssayCore
import Foundation

/// Standard multiple choice: the option letter is read with `ChoiceExtraction` and compared with
/// the gold letter. Gold answers may be written `A`, `(A)`, or as an option's text.
public struct MultipleChoiceScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    /// Labels to read when a row has no option columns (the gold letter is all there is).
    static let fallbackLabels = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]

    public func extract(_ response: String, item: Item) -> Extraction {
        if item.options.isEmpty {
            return ChoiceExtraction.extract(response, labels: Self.fallbackLabels)
        }
        return ChoiceExtraction.extract(response, options: item.options)
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        let gold = Set(item.answers.compactMap { Self.goldLabel($0, options: item.options) })
        return .binary(gold.contains(answer))
    }

    /// `A`, `(A)`, `A.` → `A`; an option's text → its label.
    static func goldLabel(_ answer: String, options: [AnswerOption]) -> String? {
        var text = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("("), text.hasSuffix(")") { text = String(text.dropFirst().dropLast()) }
        if text.hasSuffix(".") { text.removeLast() }
        if text.count == 1, let c = text.first, c.isLetter { return text.uppercased() }
        if let option = options.first(where: { $0.text.trimmingCharacters(in: .whitespaces) == text }) {
            return option.label
        }
        return nil
    }
}

/// Yes/no questions: VLMEvalKit's yes/no rule on the response, compared with the gold yes/no.
public struct YesNoScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    public func extract(_ response: String, item: Item) -> Extraction {
        YesNoExtraction.extract(response)
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        let gold = item.answers.compactMap(YesNoExtraction.normalizeGold)
        return .binary(gold.contains(answer))
    }
}
