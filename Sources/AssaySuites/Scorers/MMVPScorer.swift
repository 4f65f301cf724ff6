import AssayCore
import Foundation

/// MMVP (Tong et al., CVPR 2024, "Eyes Wide Shut?"): 150 pairs of images that CLIP sees as alike,
/// each asked the same two-option question with opposite answers. The authors score a pair as
/// right only when both of its questions are; the headline is that pair accuracy. VLMEvalKit's
/// `report_acc_MMVP` does the same over rows sorted by index (rows 2i and 2i+1 form a pair and
/// must share the question), and also reports the per-question accuracy ("Average").
///
/// Pairs come from a `pair_id` column when the dataset has one; otherwise from the integer
/// index, two consecutive indices per pair. Whether pairs start at an even or an odd index
/// (VLMEvalKit's TSV and the original CSV count differently) is decided by which alignment
/// puts identical questions together, so a missing row cannot shift every later pair. A pair
/// with a missing half is left out of the headline and counted in `incomplete_pairs_count`.
public struct MMVPScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        let gold = item.answers.compactMap { MultipleChoiceScorer.goldLabel($0, options: item.options) }
        guard gold.count == 1, let label = gold.first, item.options.isEmpty || item.optionLabels.contains(label) else {
            throw DatasetError(file: row.file, line: row.line,
                               "item '\(item.id)': answer '\(item.answers.joined(separator: ", "))' is not an option letter")
        }
        item.answers = [label]
        if item.meta("pair_id") == nil, Int(item.id) == nil {
            throw DatasetError(file: row.file, line: row.line,
                               "item '\(item.id)': MMVP pairs need an integer index or a 'pair_id' column")
        }
    }

    public func extract(_ response: String, item: Item) -> Extraction {
        if item.options.isEmpty { return ChoiceExtraction.extract(response, labels: ["A", "B"]) }
        return ChoiceExtraction.extract(response, options: item.options)
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        return .binary(item.answers.contains(answer))
    }

    /// The pair key of every result, in first-seen order of pairs.
    static func pairs(_ results: [ScoredItem]) -> [(key: String, members: [ScoredItem])] {
        func group(_ key: (ScoredItem) -> String?) -> [(key: String, members: [ScoredItem])] {
            var order: [String] = []
            var members: [String: [ScoredItem]] = [:]
            for result in results {
                let pair = key(result) ?? "item:" + result.item.id
                if members[pair] == nil { order.append(pair) }
                members[pair, default: []].append(result)
            }
            return order.map { ($0, members[$0] ?? []) }
        }
        if results.allSatisfy({ $0.item.meta("pair_id") != nil }) {
            return group { $0.item.meta("pair_id") }
        }
        // Two alignments of consecutive indices; keep the one that pairs identical questions.
        let candidates = [0, 1].map { start in
            group { result in
                Int(result.item.id).map { index in
                    let offset = index - start
                    // Floor division, so that index 0 under an odd start is a pair of its own.
                    return "pair:\(offset >= 0 ? offset / 2 : (offset - 1) / 2)"
                }
            }
        }
        func sameQuestionPairs(_ grouping: [(key: String, members: [ScoredItem])]) -> Int {
            grouping.filter { $0.members.count == 2 && $0.members[0].item.question == $0.members[1].item.question }.count
        }
        let even = sameQuestionPairs(candidates[0]), odd = sameQuestionPairs(candidates[1])
        if even != odd { return even > odd ? candidates[0] : candidates[1] }
        let smallest = results.compactMap { Int($0.item.id) }.min() ?? 0
        return smallest % 2 == 0 ? candidates[0] : candidates[1]
    }

    public func bootstrapUnits(_ results: [ScoredItem], stratum: (Item) -> String) -> [BootstrapUnit] {
        Self.pairs(results).filter { $0.members.count == 2 }.map { pair in
            BootstrapUnit(id: pair.key, stratum: stratum(pair.members[0].item),
                          value: pair.members.allSatisfy { $0.score.value == 1 } ? 1 : 0)
        }
    }

    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        let pairs = Self.pairs(results)
        let complete = pairs.filter { $0.members.count == 2 }
        guard !complete.isEmpty else { return [:] }
        return [
            "pair_accuracy": Double(complete.filter { $0.members.allSatisfy { $0.score.value == 1 } }.count) / Double(complete.count) * 100,
            "incomplete_pairs_count": Double(pairs.count - complete.count),
        ]
    }
}
