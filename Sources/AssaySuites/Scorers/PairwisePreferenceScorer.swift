import AssayCore
import Foundation

/// The model as a judge of two responses to one multimodal prompt: VL-RewardBench (Li et al.,
/// 2024), Multimodal RewardBench (Yasunaga et al., 2025) and MM-RLHF-RewardBench (Zhang et al.,
/// 2025).
///
/// Every pair is asked twice, with the responses in both orders (`expand`), so a judge that
/// prefers a position cannot gain from the benchmark's order. A pair's accuracy is the mean of
/// its two judgements (the expected accuracy under a random order, which is what the official
/// random or length-parity order estimates); the order the official protocol would have used is
/// also scored alone (`official_order_accuracy`). Reported besides accuracy and the
/// per-category accuracies:
/// - `position_consistency`: the share of pairs whose two judgements pick the same response;
/// - `consistent_accuracy`: the share of pairs judged right in both orders;
/// - `tie_count`, `unparsed_count` and `unparsed_rate` (percent of judgements): judgements that
///   name no winner (scored wrong, never replaced by a random pick as the official scripts do);
/// - VL-RewardBench: `macro_accuracy` over general / hallucination / reasoning and
///   `accuracy_excluding_unparsed` (the official `cal.py` drops unmatched judgements);
/// - MM-RLHF-RewardBench: `acc_plus`, the share of prompts all of whose pairs are judged right.
public struct PairwisePreferenceScorer: SuiteScorer, VideoFrameSource {
    /// The benchmark whose data keys, prompt labels, verdict rule and extra metrics apply.
    public enum Benchmark: String, Sendable {
        case vlRewardBench = "vl_rewardbench"
        case multimodalRewardBench = "mm_rewardbench"
        case mmRLHF = "mm_rlhf_rewardbench"
        /// The held-out split of `assay critic build` (`test.jsonl`), asked with the critic prompt
        /// it was trained on and read by the release's reward rule (`CriticRewardRule`).
        case criticPairs = "critic_pairs"
    }

    public let benchmark: Benchmark
    /// 2: `consistent_accuracy` and `unparsed_rate` added.
    public let version = "2"
    /// MM-RLHF-RewardBench's video prompts are folders of frames.
    public let videoColumn = "video"

    public init(benchmark: Benchmark) {
        self.benchmark = benchmark
    }

    /// How the two positions are named in the prompt and in the verdict.
    var labels: (first: String, second: String) {
        benchmark == .vlRewardBench || benchmark == .criticPairs ? ("1", "2") : ("A", "B")
    }

    // MARK: - Dataset

    /// Accepts the official JSON Lines key names: Multimodal RewardBench's `ID`, `Text`, `Image`
    /// and MM-RLHF's `id`, `prompt`, `image` (where one prompt id has several pairs, so rows get
    /// the index `<id>#<n>`).
    public func adapt(_ file: DatasetFile) throws -> DatasetFile {
        var adapted = file
        var seen: [String: Int] = [:]
        adapted.rows = file.rows.map { row in
            var row = row
            switch benchmark {
            case .vlRewardBench:
                break
            case .criticPairs:
                // One item may have several pairs: `<suite>/<item>#<n>`.
                if row.values["index"] == nil {
                    let id = [row.text("suite"), row.text("item_id")].compactMap { $0 }.joined(separator: "/")
                    let key = id.isEmpty ? "line-\(row.line)" : id
                    let n = seen[key, default: 0]
                    seen[key] = n + 1
                    row.values["index"] = .string("\(key)#\(n)")
                }
                if row.values["image_path"] == nil, let images = row.values["images"] { row.values["image_path"] = images }
                row.values["images"] = nil
            case .multimodalRewardBench:
                if row.values["index"] == nil, let id = row.values["ID"] { row.values["index"] = id }
                if row.values["question"] == nil, let text = row.values["Text"] { row.values["question"] = text }
                if row.values["image_path"] == nil, row.values["image"] == nil, let image = row.values["Image"] {
                    row.values["image_path"] = image
                }
            case .mmRLHF:
                if row.values["index"] == nil, let id = row.text("id") {
                    let n = seen[id, default: 0]
                    seen[id] = n + 1
                    row.values["index"] = .string("\(id)#\(n)")
                    row.values["group"] = .string(id)
                }
                if row.values["question"] == nil, let prompt = row.values["prompt"] { row.values["question"] = prompt }
                if row.values["image_path"] == nil, let image = row.text("image") {
                    row.values["image_path"] = .string(image)
                    row.values["image"] = nil
                }
            }
            return row
        }
        for column in ["index", "question", "image_path"] where !adapted.columns.contains(column) {
            if adapted.rows.contains(where: { $0.values[column] != nil }) { adapted.columns.append(column) }
        }
        if benchmark == .mmRLHF { adapted.columns.removeAll { $0 == "image" } }
        return adapted
    }

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        func fail(_ message: String) -> DatasetError { DatasetError(file: row.file, line: row.line, message) }
        let first: String, second: String, preferred: Int
        switch benchmark {
        case .vlRewardBench:
            guard let responses = try row.list("response"), responses.count == 2 else {
                throw fail("column 'response' must be a list of two responses")
            }
            guard let ranking = ListLiteral.parse(row.text("answer") ?? row.text("human_ranking") ?? "")?.compactMap({ Int($0) }),
                  ranking.count == 2, let best = ranking.firstIndex(of: 0) else {
                throw fail("column 'answer' must be the human ranking of the two responses, like [0, 1]")
            }
            (first, second, preferred) = (responses[0], responses[1], best + 1)
            if item.category == nil {
                item.category = Self.vlRewardBenchCategory(id: row.text("id") ?? item.id)
            }
        case .multimodalRewardBench:
            guard let output1 = row.text("Output1"), let output2 = row.text("Output2") else {
                throw fail("keys 'Output1' and 'Output2' are required")
            }
            guard let better = row.text("Better"), better == "Output1" || better == "Output2" else {
                throw fail("key 'Better' must be 'Output1' or 'Output2'")
            }
            (first, second, preferred) = (output1, output2, better == "Output1" ? 1 : 2)
            item.category = Self.multimodalRewardBenchCategory(row.text("Category") ?? item.category ?? "", id: item.id)
        case .criticPairs:
            // An empty response is content a critic judges, not a missing value.
            guard let r1 = row.values["response_1"].flatMap({ $0.text }), let r2 = row.values["response_2"].flatMap({ $0.text }) else {
                throw fail("keys 'response_1' and 'response_2' are required (critic data written by an older assay has only 'problem': build it again)")
            }
            guard let label = CriticLabel.parse(row.text("answer") ?? "") else { throw fail("'answer' must be 1 or 2") }
            (first, second, preferred) = (r1, r2, label)
            if item.category == nil { item.category = row.text("suite") }
        case .mmRLHF:
            guard let chosen = row.text("chosen"), let rejected = row.text("rejected") else {
                throw fail("keys 'chosen' and 'rejected' are required")
            }
            (first, second, preferred) = (chosen, rejected, 1)
            item.category = Self.mmRLHFCategory(path: (row.text("image_path") ?? "") + (row.text("video") ?? ""))
        }
        item.metadata["response_1"] = .string(first)
        item.metadata["response_2"] = .string(second)
        item.metadata["preferred"] = .number(Double(preferred))
        item.answers = []
    }

    /// The pair in its dataset order and swapped; ids `<id>@12` and `<id>@21`.
    public func expand(_ item: Item) throws -> [Item] {
        guard let r1 = item.meta("response_1"), let r2 = item.meta("response_2"),
              let preferred = item.metadata["preferred"]?.numberValue else { return [item] }
        var officialSwapped: Bool?
        switch benchmark {
        case .vlRewardBench:
            // VLMEvalKit's deterministic stand-in for the official random order.
            officialSwapped = (r1.unicodeScalars.count + r2.unicodeScalars.count) % 2 == 1
        case .multimodalRewardBench, .criticPairs:
            officialSwapped = false
        case .mmRLHF:
            officialSwapped = nil
        }
        return [false, true].map { swapped in
            var copy = item
            copy.id = item.id + (swapped ? "@21" : "@12")
            copy.metadata["pair"] = .string(item.id)
            copy.metadata["order"] = .string(swapped ? "swapped" : "original")
            copy.metadata["response_first"] = .string(swapped ? r2 : r1)
            copy.metadata["response_second"] = .string(swapped ? r1 : r2)
            let preferredFirst = (preferred == 1) != swapped
            copy.answers = [preferredFirst ? labels.first : labels.second]
            if let officialSwapped { copy.metadata["official_order"] = .bool(officialSwapped == swapped) }
            return copy
        }
    }

    public func templateVariables(for item: Item) -> [String: String] {
        // The verdict tokens contain "[[", which the template syntax reserves for optional parts.
        var variables = ["response_first": item.meta("response_first") ?? "", "response_second": item.meta("response_second") ?? "",
                         "verdict_first": "[[\(labels.first)]]", "verdict_second": "[[\(labels.second)]]"]
        if benchmark == .criticPairs {
            variables["critic_prompt"] = CriticPrompt.text(question: item.question, first: variables["response_first"] ?? "",
                                                           second: variables["response_second"] ?? "")
        }
        return variables
    }

    // MARK: - Categories

    /// `get_dataset_from_id` + the group mapping of the official `cal.py`.
    static func vlRewardBenchCategory(id: String) -> String {
        let cut = id.firstIndex(where: { $0 == "_" || $0 == "-" }) ?? id.endIndex
        switch String(id[..<cut]) {
        case "RLAIF", "RLHF", "hallucination": return "hallucination"
        case "mathverse", "mmmu": return "reasoning"
        default: return "general"  // wildvision-battle and vlfeedback
        }
    }

    /// `compute_acc` of `scripts/2_get_accuracy.py`: safety split into bias (PAIRS) and toxicity,
    /// reasoning into math and coding.
    static func multimodalRewardBenchCategory(_ category: String, id: String) -> String {
        let lowered = id.lowercased()
        switch category {
        case "safety": return lowered.hasPrefix("pairs") ? "safety/bias" : "safety/toxicity"
        case "reasoning": return lowered.hasPrefix("math") ? "reasoning/math" : "reasoning/coding"
        default: return category
        }
    }

    /// `cal_performance_mmreweard_bench.py`: the first keyword found in the media path.
    static func mmRLHFCategory(path: String) -> String {
        ["mcq", "long", "short", "safety", "video"].first { path.contains($0) } ?? "other"
    }

    // MARK: - Extraction

    private static let officialJudgment = Pattern(
        #"(?:Overall Judgment|Therefore)\s*.*\s*-*\s*Answer\s*(\d+)\s*is\s*(?:the\s*)?(?:slightly\s*)?better"#, caseInsensitive: true)
    private static let answerIsBetter = Pattern(#"Answer\s*([12])\s*is\s*(?:the\s*)?(?:slightly\s*)?better"#, caseInsensitive: true)
    private static let judgmentTie = Pattern(
        #"Overall Judgment\s*:?\s*(?:Both answers|Neither|Tie|It'?s a tie|The answers are equally)"#, caseInsensitive: true)
    private static let bracketVerdict = Pattern(#"\[\[([ABC])\]\]"#)

    public func extract(_ response: String, item: Item) -> Extraction {
        if benchmark == .criticPairs {
            // The rule the critic was rewarded by, on the whole reply: the last closed box, read by CriticLabel.
            let verdict = CriticRewardRule.read(response)
            guard let choice = verdict.choice else { return .unparsed(reason: "no \\boxed{1} or \\boxed{2}") }
            return .answer(String(choice), method: verdict.format ? "boxed+format" : "boxed")
        }
        let text = ReasoningText.stripThink(response)
        if text.isEmpty { return .unparsed(reason: "empty response") }
        switch benchmark {
        case .vlRewardBench:
            // The official regex runs on the response without newlines and asterisks.
            let flat = text.replacingOccurrences(of: "\n", with: "").replacingOccurrences(of: "*", with: "")
            if let number = Self.officialJudgment.firstMatch(in: flat, group: 1) {
                guard number == "1" || number == "2" else { return .unparsed(reason: "judgment names Answer \(number)") }
                return .answer(number, method: "official_regex")
            }
            if let number = Self.answerIsBetter.lastMatch(in: flat, group: 1) { return .answer(number, method: "answer_is_better") }
            if let boxed = ReasoningText.lastBoxed(text) {
                let digits = boxed.filter { $0 == "1" || $0 == "2" }
                if digits.count == 1 { return .answer(String(digits), method: "boxed") }
            }
            if Self.judgmentTie.matches(flat) { return .answer("tie", method: "tie") }
            return .unparsed(reason: "no 'Answer X is better' judgment")
        case .multimodalRewardBench, .mmRLHF, .criticPairs:
            // The official script checks "[[A]]" before "[[B]]"; the last verdict is the final one.
            guard let verdict = Self.bracketVerdict.lastMatch(in: text, group: 1) else {
                return .unparsed(reason: "no [[A]] or [[B]] verdict")
            }
            if verdict == "C" { return .answer("tie", method: "tie") }
            return .answer(verdict, method: "verdict")
        }
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard var answer = extraction.answer else { return .binary(false) }
        if extraction.method == "imported", let parsed = extract(answer, item: item).answer { answer = parsed }
        return .binary(item.answers.contains(answer), normalized: answer)
    }

    // MARK: - Aggregation

    public func bootstrapUnits(_ results: [ScoredItem], stratum: (Item) -> String) -> [BootstrapUnit] {
        pairs(results).map { pair in
            BootstrapUnit(id: pair.id, stratum: stratum(pair.judgements[0].item),
                          value: pair.judgements.reduce(0) { $0 + $1.score.value } / Double(pair.judgements.count))
        }
    }

    struct Pair {
        var id: String
        var judgements: [ScoredItem]
    }

    func pairs(_ results: [ScoredItem]) -> [Pair] {
        var order: [String] = []
        var grouped: [String: [ScoredItem]] = [:]
        for result in results {
            let id = result.item.meta("pair") ?? result.item.id
            if grouped[id] == nil { order.append(id) }
            grouped[id, default: []].append(result)
        }
        return order.map { Pair(id: $0, judgements: grouped[$0] ?? []) }
    }

    /// Which response (1 or 2, in dataset order) a judgement prefers; `nil` for a tie or none.
    func preferredResponse(_ result: ScoredItem) -> Int? {
        guard let answer = result.extraction.answer, answer != "tie" else { return nil }
        let imported = result.extraction.method == "imported" ? extract(answer, item: result.item).answer : answer
        guard let label = imported, label == labels.first || label == labels.second else { return nil }
        let first = label == labels.first
        let swapped = result.item.meta("order") == "swapped"
        return first != swapped ? 1 : 2
    }

    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        guard !results.isEmpty else { return [:] }
        var metrics: [String: Double] = [:]
        let allPairs = pairs(results)
        let complete = allPairs.filter { $0.judgements.count == 2 }
        if !complete.isEmpty {
            let consistent = complete.filter { pair in
                guard let a = preferredResponse(pair.judgements[0]), let b = preferredResponse(pair.judgements[1]) else { return false }
                return a == b
            }
            metrics["position_consistency"] = Double(consistent.count) / Double(complete.count) * 100
            // Right in both orders: what a judge knows, not what its position bias lets it guess.
            let rightTwice = complete.filter { pair in pair.judgements.allSatisfy { $0.score.value == 1 } }
            metrics["consistent_accuracy"] = Double(rightTwice.count) / Double(complete.count) * 100
        }
        metrics["pair_count"] = Double(allPairs.count)
        metrics["tie_count"] = Double(results.filter { $0.extraction.answer == "tie" }.count)
        metrics["unparsed_count"] = Double(results.filter { $0.extraction.isUnparsed }.count)
        metrics["unparsed_rate"] = Double(results.filter { $0.extraction.isUnparsed }.count) / Double(results.count) * 100
        let official = results.filter { $0.item.metadata["official_order"] == .bool(true) }
        if !official.isEmpty {
            metrics["official_order_accuracy"] = official.reduce(0) { $0 + $1.score.value } / Double(official.count) * 100
        }
        switch benchmark {
        case .vlRewardBench:
            var byCategory: [String: (Double, Int)] = [:]
            for pair in allPairs {
                let category = pair.judgements[0].item.category ?? ""
                let value = pair.judgements.reduce(0) { $0 + $1.score.value } / Double(pair.judgements.count)
                let current = byCategory[category] ?? (0, 0)
                byCategory[category] = (current.0 + value, current.1 + 1)
            }
            metrics["macro_accuracy"] = byCategory.values.reduce(0) { $0 + $1.0 / Double($1.1) } / Double(byCategory.count) * 100
            let parsed = results.filter { !$0.extraction.isUnparsed }
            if !parsed.isEmpty {
                metrics["accuracy_excluding_unparsed"] = parsed.reduce(0) { $0 + $1.score.value } / Double(parsed.count) * 100
            }
        case .mmRLHF:
            var groups: [String: Bool] = [:]
            for result in results {
                let group = result.item.meta("group") ?? result.item.meta("pair") ?? result.item.id
                groups[group] = (groups[group] ?? true) && result.score.value == 1
            }
            metrics["acc_plus"] = Double(groups.values.filter { $0 }.count) / Double(groups.count) * 100
        case .multimodalRewardBench:
            break
        case .criticPairs:
            // Replies in the release's format (<think>…</think> then a box) with a readable choice.
            metrics["format_rate"] = Double(results.filter { $0.extraction.method == "boxed+format" }.count) / Double(results.count) * 100
        }
        return metrics
    }
}
