import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// What a report says about how a run was made and how much of each suite it covers, read from
/// the run's record, its notes and its stored metrics.
enum RunDescription {
    /// The generation parameters as the runs table shows them. An imported run's predictions
    /// were generated elsewhere: whatever parameters its record holds (older imports recorded
    /// Assay's defaults) were never used, so they read as unknown.
    static func generationParams(_ run: RunRecord) -> String {
        run.backend == "replay" ? "unknown (imported predictions)" : "`\(MarkdownReport.cell(run.generationParams))`"
    }

    /// Every recorded setting of the run (`limit`, `batch_size`, `shard`, precision, …), as
    /// `key: value` pairs in key order.
    static func settings(_ run: RunRecord) -> String {
        var values = run.noteValues
        if run.backend == "replay", values["generation"] == nil { values["generation"] = "unknown (imported predictions)" }
        if let directories = values[RunRecord.suitesDirsNote] {
            values[RunRecord.suitesDirsNote] = run.suitesDirectories.isEmpty ? directories : run.suitesDirectories.joined(separator: ", ")
        }
        guard !values.isEmpty else { return "none recorded" }
        return values.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: "; ")
    }

    /// The runs' settings as a Markdown section.
    static func settingsSection(_ runs: [RunRecord]) -> String {
        var md = "\n## Run settings\n\nEverything recorded with each run (sweep flags such as limit, batch size, precision and shard; "
        md += "an import's source).\n\n| run | settings |\n|---|---|\n"
        for run in runs { md += "| \(MarkdownReport.cell(run.name)) | \(MarkdownReport.cell(settings(run))) |\n" }
        return md
    }

    /// `n of N` items scored, and why the rest are not: `--limit`, a dataset file smaller than
    /// the suite, other shards, missing responses.
    static func coverage(run: RunRecord, registration: SuiteRegistration, metrics: SuiteMetrics?, expected: Int?) -> String {
        guard let metrics else { return "not scored" }
        let total = max(expected ?? registration.itemCount, registration.itemCount)
        var reasons: [String] = []
        let notes = run.noteValues
        if registration.itemCount < total {
            if let limit = notes["limit"], Int(limit) == registration.itemCount {
                reasons.append("limit \(limit)")
            } else {
                reasons.append("\(registration.itemCount) items in the dataset file")
            }
        }
        if let others = metrics.metrics["in_other_shards"], others > 0 {
            reasons.append("\(Int(others)) in other shards" + (notes["shard"].map { " (this is shard \($0))" } ?? ""))
        }
        if metrics.missing > 0 { reasons.append("\(metrics.missing) missing (no usable response)") }
        return "\(metrics.n) of \(total)" + (reasons.isEmpty ? "" : " (" + reasons.joined(separator: "; ") + ")")
    }
}
