import AssayCore
import Foundation

/// ChartQA (Masry et al., ACL Findings 2022), test split: human-written and machine-generated
/// questions about charts, scored with relaxed accuracy: 5% tolerance for numeric answers,
/// exact (case-insensitive) match otherwise (`RelaxedAccuracy`, the Pix2Struct implementation
/// VLMEvalKit uses). A question is right when the stripped prediction matches any gold answer.
///
/// The prediction is the whole response, as in VLMEvalKit (after the `<think>`/`\boxed{}` rules);
/// a verbose answer is therefore scored as given, not shortened. Per-split numbers (`human`,
/// `augmented`) are reported when the dataset has a `split` column.
public struct ChartQAScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    public func extract(_ response: String, item: Item) -> Extraction {
        FreeTextAnswer.extract(response)
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        let prediction = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        return .binary(item.answers.contains { RelaxedAccuracy.isCorrect(target: $0, prediction: prediction) })
    }

    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        SplitBreakdown.metrics(results)
    }
}

/// Mean score per value of the dataset's `split` column (ChartQA human/augmented, …).
enum SplitBreakdown {
    static func metrics(_ results: [ScoredItem]) -> [String: Double] {
        var sums: [String: (Double, Int)] = [:]
        for result in results {
            guard let split = result.item.meta("split"), !split.isEmpty else { continue }
            let current = sums[split] ?? (0, 0)
            sums[split] = (current.0 + result.score.value, current.1 + 1)
        }
        return Dictionary(uniqueKeysWithValues: sums.map { ("split/\($0.key)", $0.value.0 / Double($0.value.1) * 100) })
    }
}
