import AssayCore
import Foundation

/// MMBench (Liu et al., ECCV 2024) with CircularEval: a question with N options is asked N times,
/// its options circularly shifted each time (A B C D, B C D A, C D A B, D A B C), and it counts as
/// right only when every pass is answered right.
///
/// `expand` makes the passes from each question, so any copy of the questions works. VLMEvalKit's
/// MMBench TSVs already hold the shifted copies as extra rows (index + k·1,000,000, or a
/// `g_index` column pointing at the original); those rows are dropped and made again here, which
/// gives the same N passes (all circular shifts of the options) without depending on the order
/// in which the TSV lists them. Passes after the first get the id `<index>@r<k>`.
///
/// Extraction is Assay's deterministic letter rule (`ChoiceExtraction`, which includes
/// VLMEvalKit's `can_infer_option` and `can_infer_text` steps). The official pipeline sends what
/// those rules cannot read to a GPT judge; here it is `unparsed` and the pass is wrong.
/// A question with a pass that has no response (a backend error) is missing, not wrong: it is
/// left out of the headline and counted in `incomplete_questions_count`.
public struct MMBenchScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    static let groupKey = "circular_group"
    static let passKey = "circular_pass"
    static let passesKey = "circular_passes"
    /// VLMEvalKit's offset between a question's index and its shifted copies.
    static let copyOffset = 1_000_000

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        guard item.options.count >= 2 else {
            throw DatasetError(file: row.file, line: row.line, "item '\(item.id)' has \(item.options.count) option column(s); CircularEval needs at least 2 (A, B, …)")
        }
        let gold = item.answers.compactMap { MultipleChoiceScorer.goldLabel($0, options: item.options) }
        guard gold.count == 1, let label = gold.first, item.optionLabels.contains(label) else {
            throw DatasetError(file: row.file, line: row.line,
                               "item '\(item.id)': answer '\(item.answers.joined(separator: ", "))' is not one of its options \(item.optionLabels.joined(separator: ", "))")
        }
        item.answers = [label]
    }

    /// True for VLMEvalKit's pre-shifted copy rows.
    static func isShiftedCopy(_ item: Item) -> Bool {
        if let group = item.meta("g_index"), group != item.id { return true }
        if let index = Int(item.id), index >= copyOffset { return true }
        return false
    }

    public func expand(_ item: Item) throws -> [Item] {
        if Self.isShiftedCopy(item) { return [] }
        let labels = item.optionLabels
        let texts = item.options.map(\.text)
        let count = labels.count
        guard let goldIndex = labels.firstIndex(of: item.answer) else { return [] }  // prepare checked it
        return (0..<count).map { shift in
            var pass = item
            if shift > 0 { pass.id = "\(item.id)@r\(shift)" }
            pass.options = (0..<count).map { AnswerOption(label: labels[$0], text: texts[($0 + shift) % count]) }
            pass.answers = [labels[(goldIndex - shift + count) % count]]
            pass.metadata[Self.groupKey] = .string(item.id)
            pass.metadata[Self.passKey] = .number(Double(shift))
            pass.metadata[Self.passesKey] = .number(Double(count))
            return pass
        }
    }

    public func extract(_ response: String, item: Item) -> Extraction {
        ChoiceExtraction.extract(response, options: item.options)
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        return .binary(item.answers.contains(answer))
    }

    /// One question's passes.
    struct Question {
        var id: String
        var item: Item
        var passes: [ScoredItem]
        var expected: Int
        var complete: Bool { passes.count >= expected }
        var correct: Bool { complete && passes.allSatisfy { $0.score.value == 1 } }
    }

    static func questions(_ results: [ScoredItem]) -> [Question] {
        var order: [String] = []
        var byGroup: [String: Question] = [:]
        for result in results {
            let group = result.item.meta(groupKey) ?? result.item.id
            let expected = result.item.meta(passesKey).flatMap { Int($0) } ?? 1
            if byGroup[group] == nil {
                order.append(group)
                byGroup[group] = Question(id: group, item: result.item, passes: [], expected: expected)
            }
            byGroup[group]?.passes.append(result)
        }
        return order.compactMap { byGroup[$0] }
    }

    /// One unit per question whose passes were all answered.
    public func bootstrapUnits(_ results: [ScoredItem], stratum: (Item) -> String) -> [BootstrapUnit] {
        Self.questions(results).filter(\.complete).map {
            BootstrapUnit(id: $0.id, stratum: stratum($0.item), value: $0.correct ? 1 : 0)
        }
    }

    /// CircularEval accuracy overall and per category (replacing the per-pass numbers), the
    /// per-pass ("vanilla") accuracy, and how many questions lack a pass.
    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        let questions = Self.questions(results)
        let complete = questions.filter(\.complete)
        guard !complete.isEmpty else { return [:] }
        var metrics: [String: Double] = [
            "accuracy": Double(complete.filter(\.correct).count) / Double(complete.count) * 100,
            "vanilla_accuracy": results.reduce(0) { $0 + $1.score.value } / Double(results.count) * 100,
            "incomplete_questions_count": Double(questions.count - complete.count),
        ]
        for (name, key) in [("category", \Item.category), ("subcategory", \Item.subcategory)] {
            var groups: [String: (Int, Int)] = [:]
            for question in complete {
                guard let value = question.item[keyPath: key], !value.isEmpty else { continue }
                let current = groups[value] ?? (0, 0)
                groups[value] = (current.0 + (question.correct ? 1 : 0), current.1 + 1)
            }
            for (group, (right, total)) in groups { metrics["\(name)/\(group)"] = Double(right) / Double(total) * 100 }
        }
        return metrics
    }
}
