import AssayCore
import Foundation

/// LogicVista (Xiao et al., 2024): 448 visual logic questions whose answers may name several
/// options ("B, D"). The official `extract_accuracy.py` has GPT-4 list the chosen letters and
/// counts a question right only when the sorted letter lists are equal; Assay reads the letters
/// with the deterministic `LetterSet` rules and compares them the same way. A response naming no
/// option is `unparsed` (GPT's "ZZZZZ"), scored wrong and counted.
///
/// Besides overall accuracy, the official `evaluate_logicvista` reports one accuracy per reasoning
/// skill (inductive, deductive, numerical, spatial, mechanical), an item counting for every skill
/// its `skill` column names.
public struct LogicVistaScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    /// LogicVista's answers use A–H (and a few digits).
    static let labels = ["A", "B", "C", "D", "E", "F", "G", "H"]
    static let skills = ["inductive", "deductive", "numerical", "spatial", "mechanical"]

    public func extract(_ response: String, item: Item) -> Extraction {
        LetterSet.extract(response, labels: Self.labels)
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard var answer = extraction.answer else { return .binary(false) }
        if extraction.method == "imported", case .answer(let parsed, _) = LetterSet.extract(answer, labels: Self.labels) {
            answer = parsed
        }
        return .binary(LetterSet.matches(answer, gold: item.answer), normalized: answer)
    }

    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        var metrics: [String: Double] = [:]
        for skill in Self.skills {
            // `df["skill"].str.contains(skill)`: the column is a list written as text.
            let members = results.filter { ($0.item.meta("skill") ?? "").contains(skill) }
            guard !members.isEmpty else { continue }
            metrics["skill/\(skill)"] = members.reduce(0) { $0 + $1.score.value } / Double(members.count) * 100
        }
        return metrics
    }
}
