import AssayCore
import Foundation

/// OCRBench v1 (Liu et al., Sci. China Inf. Sci. 2024): 1,000 OCR questions in ten categories;
/// the score is the number answered right, out of 1000. The official rule (`example.py` of
/// Yuliang-Liu/MultimodalOCR, copied by VLMEvalKit): a prediction is right when a gold answer is
/// a substring of it, after lower-casing, stripping and turning newlines into spaces; for the
/// handwritten mathematical expressions (HME100k) without lower-casing and with every space and
/// newline removed from both.
///
/// The headline is that count divided by 10 (percent, VLMEvalKit's "Final Score Norm"); the
/// count itself is `final_score_count`, with `count/<category>` per category and the authors'
/// `count/Text Recognition` (the six recognition categories together).
public struct OCRBenchScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    static let handwrittenMath = "Handwritten Mathematical Expression Recognition"
    static let recognitionCategories: Set<String> = [
        "Regular Text Recognition", "Irregular Text Recognition", "Artistic Text Recognition",
        "Handwriting Recognition", "Digit String Recognition", "Non-Semantic Text Recognition",
    ]

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        guard !item.answers.isEmpty else {
            throw DatasetError(file: row.file, line: row.line, "item '\(item.id)' has no gold answer")
        }
        guard item.category?.isEmpty == false else {
            throw DatasetError(file: row.file, line: row.line, "item '\(item.id)' has no 'category' (the OCRBench question type)")
        }
    }

    /// The response after `<think>` removal. A `\boxed{}` is not singled out: transcribed
    /// formulas contain boxes (one HME100k gold is `3 2 + 5 = \boxed { 3 } \boxed { 7 }`), and the
    /// substring rule finds a boxed answer anyway.
    public func extract(_ response: String, item: Item) -> Extraction {
        FreeTextAnswer.extract(response, preferBoxed: false)
    }

    static func isHandwrittenMath(_ item: Item) -> Bool {
        item.category == handwrittenMath || item.meta("dataset_name") == "HME100k"
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        return .binary(Self.matches(prediction: answer, answers: item.answers, handwrittenMath: Self.isHandwrittenMath(item)))
    }

    /// The official substring rule.
    static func matches(prediction: String, answers: [String], handwrittenMath: Bool) -> Bool {
        if handwrittenMath {
            let predicted = spaceless(prediction)
            return answers.contains { contains(predicted, spaceless($0)) }
        }
        let predicted = flattened(prediction.lowercased())
        return answers.contains { contains(predicted, flattened($0.lowercased())) }
    }

    /// Python's `needle in haystack`: code-unit matching, without Swift's grapheme and
    /// canonical-equivalence rules.
    static func contains(_ haystack: String, _ needle: String) -> Bool {
        needle.isEmpty || haystack.range(of: needle, options: .literal) != nil
    }

    /// `s.strip().replace("\n", " ")`.
    static func flattened(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\n", with: " ")
    }

    /// `s.strip().replace("\n", " ").replace(" ", "")`.
    static func spaceless(_ text: String) -> String {
        flattened(text).replacingOccurrences(of: " ", with: "")
    }

    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        var counts: [String: Double] = [:]
        var total = 0.0
        var recognition = 0.0
        for result in results {
            let category = result.item.category ?? ""
            let point = result.score.value
            counts["count/\(category)", default: 0] += point
            total += point
            if Self.recognitionCategories.contains(category) { recognition += point }
        }
        counts["count/Text Recognition"] = recognition
        counts["final_score_count"] = total
        return counts
    }
}
