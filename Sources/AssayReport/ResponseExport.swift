import AssayCore
import AssayStore
import Foundation

/// Per-item responses as a file a researcher opens elsewhere: JSON Lines (lmms-eval's per-sample
/// logs), or CSV/TSV (VLMEvalKit's prediction sheets).
public enum ResponseExport {
    /// The output formats of `assay responses export`.
    public enum Format: String, Sendable, CaseIterable {
        case jsonl, csv, tsv
    }

    /// Column names, in order (also the JSON keys).
    public static let columns = [
        "suite", "item_id", "sample", "cache_key", "status", "error_kind", "error_message", "response", "answer", "method",
        "unparsed_reason", "score", "correct", "latency_seconds", "prompt_tokens", "completion_tokens", "attempts",
    ]

    /// The whole file's text.
    public static func render(_ rows: [ResponseExportRow], format: Format) -> String {
        switch format {
        case .jsonl:
            return rows.map(jsonLine).joined()
        case .csv, .tsv:
            let separator: Character = format == .csv ? "," : "\t"
            var out = columns.map { quote($0, separator: separator) }.joined(separator: String(separator)) + "\r\n"
            for row in rows {
                out += cells(row).map { quote($0 ?? "", separator: separator) }.joined(separator: String(separator)) + "\r\n"
            }
            return out
        }
    }

    /// A row's cells as text, `nil` for absent values, in `columns` order.
    static func cells(_ row: ResponseExportRow) -> [String?] {
        [
            row.suite, row.itemID, String(row.sample), row.cacheKey, row.status.rawValue, row.errorKind, row.errorMessage,
            row.response, row.answer, row.method, row.unparsedReason, row.score.map { number($0) },
            row.correct.map { $0 ? "true" : "false" }, row.latencySeconds.map { number($0) },
            row.promptTokens.map(String.init), row.completionTokens.map(String.init), String(row.attempts),
        ]
    }

    /// RFC 4180 quoting, with the separator as a parameter so TSV follows the same rule (what
    /// Python's csv module and pandas read back): a field holding the separator, a quote, CR or LF
    /// is quoted and its quotes doubled. Responses are free text, so all four occur.
    public static func quote(_ field: String, separator: Character) -> String {
        guard field.contains(where: { $0 == separator || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    static func jsonLine(_ row: ResponseExportRow) -> String {
        var object: [String: Any] = [
            "suite": row.suite, "item_id": row.itemID, "sample": row.sample, "cache_key": row.cacheKey,
            "status": row.status.rawValue, "response": row.response, "attempts": row.attempts,
        ]
        let optional: [String: Any?] = [
            "error_kind": row.errorKind, "error_message": row.errorMessage, "answer": row.answer, "method": row.method,
            "unparsed_reason": row.unparsedReason, "score": row.score, "correct": row.correct,
            "latency_seconds": row.latencySeconds, "prompt_tokens": row.promptTokens, "completion_tokens": row.completionTokens,
        ]
        for (key, value) in optional { object[key] = value ?? NSNull() }
        // invariant: every value is a string, number, boolean or null.
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "" }
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
