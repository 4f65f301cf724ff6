import AssayCore
import Foundation

/// DocVQA (Mathew et al., WACV 2021) and InfographicVQA (Mathew et al., WACV 2022): extractive
/// questions on document images, scored with ANLS (`ANLS`, the official RRC computation: best
/// normalised Levenshtein similarity over the gold answers, 0 below 0.5). The headline is the
/// mean ANLS in percent (the papers print it as a fraction, 0–1).
///
/// The prediction is the whole response (after the `<think>`/`\boxed{}` rules), as in the
/// official script and VLMEvalKit; surrounding whitespace is removed first, which the official
/// script does for the distance but not for the length it divides by (see the README).
public struct ANLSScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        guard !item.answers.isEmpty else {
            throw DatasetError(file: row.file, line: row.line, "item '\(item.id)' has no gold answer for ANLS")
        }
    }

    public func extract(_ response: String, item: Item) -> Extraction {
        FreeTextAnswer.extract(response)
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return ItemScore(value: 0) }
        let value = ANLS.score(prediction: answer, answers: item.answers)
        return ItemScore(value: value, correct: nil)
    }

    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        guard !results.isEmpty else { return [:] }
        var metrics = SplitBreakdown.metrics(results)
        // Share of questions answered exactly (similarity 1), a common companion number.
        metrics["exact_rate"] = Double(results.filter { $0.score.value == 1 }.count) / Double(results.count) * 100
        return metrics
    }
}
