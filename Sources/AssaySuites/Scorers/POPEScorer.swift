import AssayCore
import Foundation

/// POPE (Li et al., EMNLP 2023): yes/no object-existence questions on COCO under three negative
/// samplings (random, popular, adversarial). The authors report accuracy, precision, recall, F1
/// and the yes ratio per sampling (`evaluate.py`); the headline here is the mean F1 over the
/// samplings, with every per-sampling number beside it.
///
/// Rows come from VLMEvalKit's `POPE.tsv`, where a question asked in several samplings appears
/// once with its samplings comma-joined in `category` ("popular,random"); VLMEvalKit's
/// `POPE_rating` explodes that list, and so does this scorer: such an item counts in each.
///
/// Two deviations from `evaluate.py`, both on answers that are neither yes nor no: the official
/// script calls anything without "no"/"not" in its first sentence a "yes", and Assay instead
/// reads yes/no with VLMEvalKit's rule and records `unparsed`. An unparsed answer is wrong in
/// every metric: a false negative when the gold is yes, a false positive when it is no.
public struct POPEScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    /// Metadata key of the samplings an item belongs to (a JSON array of names).
    static let splitsKey = "pope_splits"

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        let splits = (item.category ?? "").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            .filter { !$0.isEmpty }
        guard !splits.isEmpty else {
            throw DatasetError(file: row.file, line: row.line, "item '\(item.id)' has no sampling in 'category' (random, popular or adversarial)")
        }
        guard let gold = item.answers.first.flatMap(YesNoExtraction.normalizeGold), item.answers.count == 1 else {
            throw DatasetError(file: row.file, line: row.line, "item '\(item.id)': answer must be yes or no, not '\(item.answers.joined(separator: ", "))'")
        }
        item.answers = [gold]
        item.metadata[Self.splitsKey] = .array(splits.map { .string($0) })
        // The comma-joined list is not a category of its own; the samplings are reported instead.
        item.category = nil
    }

    public func extract(_ response: String, item: Item) -> Extraction {
        YesNoExtraction.extract(response)
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        return .binary(item.answers.contains(answer))
    }

    static func splits(of item: Item) -> [String] {
        if case .array(let values) = item.metadata[splitsKey] { return values.compactMap(\.stringValue) }
        return []
    }

    /// One outcome of the binary classification, unparsed answers counted as wrong.
    enum Outcome { case truePositive, falsePositive, trueNegative, falseNegative }

    static func outcome(_ result: ScoredItem) -> Outcome {
        let goldYes = result.item.answer == "Yes"
        switch (goldYes, result.extraction.answer) {
        case (true, .some("Yes")): return .truePositive
        case (true, _): return .falseNegative
        case (false, .some("No")): return .trueNegative
        case (false, _): return .falsePositive
        }
    }

    /// One unit per item and sampling, weighted so that a sampling's Σ value / Σ weight is its F1
    /// (2TP / (2TP + FP + FN)); the macro mean over samplings is then the mean F1.
    public func bootstrapUnits(_ results: [ScoredItem], stratum: (Item) -> String) -> [BootstrapUnit] {
        results.flatMap { result -> [BootstrapUnit] in
            let unit: (value: Double, weight: Double)
            switch Self.outcome(result) {
            case .truePositive: unit = (2, 2)
            case .falsePositive, .falseNegative: unit = (0, 1)
            case .trueNegative: unit = (0, 0)
            }
            return Self.splits(of: result.item).map {
                BootstrapUnit(id: "\(result.item.id)|\($0)", stratum: $0, value: unit.value, weight: unit.weight)
            }
        }
    }

    /// Counts of one sampling's confusion matrix.
    struct Confusion {
        var tp = 0, fp = 0, tn = 0, fn = 0
        var total: Int { tp + fp + tn + fn }
        var accuracy: Double { total == 0 ? 0 : Double(tp + tn) / Double(total) }
        var precision: Double { tp + fp == 0 ? 0 : Double(tp) / Double(tp + fp) }
        var recall: Double { tp + fn == 0 ? 0 : Double(tp) / Double(tp + fn) }
        var f1: Double { precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall) }
        /// Share of items answered "yes" (unparsed answers are not yes).
        var yesRatio: Double { total == 0 ? 0 : Double(tp + fp) / Double(total) }
        mutating func add(_ outcome: Outcome) {
            switch outcome {
            case .truePositive: tp += 1
            case .falsePositive: fp += 1
            case .trueNegative: tn += 1
            case .falseNegative: fn += 1
            }
        }
    }

    static func confusions(_ results: [ScoredItem]) -> [String: Confusion] {
        var bySplit: [String: Confusion] = [:]
        for result in results {
            let outcome = outcome(result)
            for split in splits(of: result.item) { bySplit[split, default: Confusion()].add(outcome) }
        }
        return bySplit
    }

    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        let bySplit = Self.confusions(results)
        guard !bySplit.isEmpty else { return [:] }
        var metrics: [String: Double] = [:]
        var correct = 0, rows = 0
        for (split, confusion) in bySplit {
            metrics["\(split)/accuracy"] = confusion.accuracy * 100
            metrics["\(split)/precision"] = confusion.precision * 100
            metrics["\(split)/recall"] = confusion.recall * 100
            metrics["\(split)/f1"] = confusion.f1 * 100
            metrics["\(split)/yes_ratio"] = confusion.yesRatio * 100
            metrics["\(split)/unparsed_count"] = Double(results.filter {
                $0.extraction.isUnparsed && Self.splits(of: $0.item).contains(split)
            }.count)
            correct += confusion.tp + confusion.tn
            rows += confusion.total
        }
        let splits = bySplit.values
        metrics["f1_mean"] = splits.reduce(0) { $0 + $1.f1 } / Double(splits.count) * 100
        metrics["accuracy_mean"] = splits.reduce(0) { $0 + $1.accuracy } / Double(splits.count) * 100
        // VLMEvalKit's overall accuracy: over item × sampling rows.
        metrics["accuracy"] = Double(correct) / Double(rows) * 100
        return metrics
    }
}
