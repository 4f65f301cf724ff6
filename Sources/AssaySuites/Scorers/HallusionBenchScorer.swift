import AssayCore
import Foundation

/// HallusionBench (Guan et al., CVPR 2024): yes/no questions in sets, each question asked about
/// several figures (the original, edited versions, or none). The authors' three accuracies
/// (`utils.py` of the official repository) are:
///
/// - aAcc, per question: every row on its own (`get_eval_all`);
/// - fAcc, per figure: the rows sharing category, subcategory, set and figure id, right only when
///   all of them are; Visual-Supplement questions asked without a figure (VS, figure 0) are left
///   out (`get_eval_fig`);
/// - qAcc, per question pair: the rows sharing category, subcategory, set and question id (the
///   same question across figures), right only when all are (`get_eval_pair_all`).
///
/// The headline is the mean of the three (the leaderboard convention, VLMEvalKit #113). It is
/// computed as a macro mean over three strata of bootstrap units (questions, figures, question
/// pairs), so its intervals come from resampling each kind of unit.
///
/// Ids are read from `set_id`, `figure_id`, `question_id` columns when present (the official
/// JSON), otherwise from VLMEvalKit's `index` (`…_<set>_<figure>_<question>`, fields 3–5).
/// Deviations: the official protocol asks GPT-4 to grade each answer against a reference sentence
/// and counts "unclear" as right on VS questions without a figure; Assay reads yes/no with
/// VLMEvalKit's rule (as VLMEvalKit does before its judge) and scores an unparsed answer 0.
/// VLMEvalKit's own fAcc keeps the VS no-figure rows and keys groups without the VD/VS category;
/// Assay follows the official script.
public struct HallusionBenchScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    static let idKeys = ["set_id", "figure_id", "question_id"]

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        var ids: [String] = Self.idKeys.compactMap { row.text($0) }
        if ids.count != 3 {
            let parts = item.id.split(separator: "_", omittingEmptySubsequences: false).map(String.init)
            guard parts.count >= 6 else {
                throw DatasetError(file: row.file, line: row.line,
                                   "item '\(item.id)': needs set_id, figure_id and question_id columns, or an index of the form …_<set>_<figure>_<question>")
            }
            ids = Array(parts[3...5])
        }
        for (key, value) in zip(Self.idKeys, ids) { item.metadata[key] = .string(value) }
        guard item.category?.isEmpty == false, item.subcategory?.isEmpty == false else {
            throw DatasetError(file: row.file, line: row.line,
                               "item '\(item.id)': needs 'category' (VD or VS) and 'l2-category' (chart, table, …) to group figures and questions")
        }
        // The official JSON writes the gold as "1"/"0", VLMEvalKit as "Yes"/"No".
        let gold = item.answers.first.flatMap { answer -> String? in
            switch answer.trimmingCharacters(in: .whitespaces) {
            case "1": return "Yes"
            case "0": return "No"
            default: return YesNoExtraction.normalizeGold(answer)
            }
        }
        guard let gold, item.answers.count == 1 else {
            throw DatasetError(file: row.file, line: row.line,
                               "item '\(item.id)': answer must be Yes/No (or 1/0), not '\(item.answers.joined(separator: ", "))'")
        }
        item.answers = [gold]
    }

    public func extract(_ response: String, item: Item) -> Extraction {
        YesNoExtraction.extract(response)
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        return .binary(item.answers.contains(answer))
    }

    // MARK: - Official grouping

    /// `category_subcategory_set_figure`, or `nil` for VS questions without a figure.
    static func figureKey(_ item: Item) -> String? {
        let figure = item.meta("figure_id") ?? ""
        if item.category == "VS", figure == "0" { return nil }
        return [item.category ?? "", item.subcategory ?? "", item.meta("set_id") ?? "", figure].joined(separator: "_")
    }

    /// `category_subcategory_set_question`.
    static func questionKey(_ item: Item) -> String {
        [item.category ?? "", item.subcategory ?? "", item.meta("set_id") ?? "", item.meta("question_id") ?? ""]
            .joined(separator: "_")
    }

    /// Groups right only when every member is right, in first-seen order.
    static func allCorrect(_ results: [ScoredItem], key: (Item) -> String?) -> [(key: String, correct: Bool)] {
        var order: [String] = []
        var correct: [String: Bool] = [:]
        for result in results {
            guard let group = key(result.item) else { continue }
            if correct[group] == nil { order.append(group) }
            correct[group] = (correct[group] ?? true) && result.score.value == 1
        }
        return order.map { ($0, correct[$0] ?? false) }
    }

    public func bootstrapUnits(_ results: [ScoredItem], stratum: (Item) -> String) -> [BootstrapUnit] {
        let questions = results.map { BootstrapUnit(id: "a:" + $0.item.id, stratum: "aAcc", value: $0.score.value) }
        let figures = Self.allCorrect(results, key: Self.figureKey).map {
            BootstrapUnit(id: "f:" + $0.key, stratum: "fAcc", value: $0.correct ? 1 : 0)
        }
        let pairs = Self.allCorrect(results, key: Self.questionKey).map {
            BootstrapUnit(id: "q:" + $0.key, stratum: "qAcc", value: $0.correct ? 1 : 0)
        }
        return questions + figures + pairs
    }

    /// aAcc, fAcc and qAcc in percent, with the group counts, for a set of results.
    static func accuracies(_ results: [ScoredItem]) -> [String: Double] {
        guard !results.isEmpty else { return [:] }
        let figures = allCorrect(results, key: figureKey)
        let pairs = allCorrect(results, key: questionKey)
        func percent(_ groups: [(key: String, correct: Bool)]) -> Double {
            groups.isEmpty ? 0 : Double(groups.filter(\.correct).count) / Double(groups.count) * 100
        }
        return [
            "aAcc": results.reduce(0) { $0 + $1.score.value } / Double(results.count) * 100,
            "fAcc": percent(figures),
            "qAcc": percent(pairs),
            "figures_count": Double(figures.count),
            "question_pairs_count": Double(pairs.count),
        ]
    }

    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        var metrics = Self.accuracies(results)
        for category in Set(results.compactMap(\.item.category)).sorted() {
            for (name, value) in Self.accuracies(results.filter { $0.item.category == category }) {
                metrics["\(category)/\(name)"] = value
            }
        }
        return metrics
    }
}
