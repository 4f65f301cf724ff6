import AssayCore
import Foundation
import GRDB

/// A run as `assay runs list` shows it: what it is, what it holds, and whether it is done.
public struct RunSummary: Sendable, Hashable, Codable {
    public var name: String
    public var model: String
    public var backend: String
    public var suites: [String]
    /// Items with a usable first response (sample 0, not an error), over all suites.
    public var n: Int
    /// Every stored response, errors and extra samples included.
    public var responses: Int
    /// Responses that are errors (reported missing until a rerun replaces them).
    public var errors: Int
    /// Items the run's suites registered (after `--limit`; all shards' items for a shard run).
    public var items: Int
    /// Suites with stored metrics.
    public var scoredSuites: Int
    public var createdAt: String
    /// `complete`, `not scored`, `2 errors`, `shard 1/2`, … (see `RunSummary.status(…)`).
    public var status: String

    enum CodingKeys: String, CodingKey {
        case name, model, backend, suites, n, responses, errors, items, status
        case scoredSuites = "scored_suites"
        case createdAt = "created_at"
    }
}

/// One stored response with its extraction and score, as `assay responses export` writes it.
public struct ResponseExportRow: Sendable, Hashable {
    public var suite: String
    public var itemID: String
    public var sample: Int
    /// The response's cache key: a hash of backend, rendered prompt, parameters and sample.
    public var cacheKey: String
    public var status: ResponseStatus
    public var errorKind: String?
    public var errorMessage: String?
    public var response: String
    /// The extracted answer; `nil` when unparsed or not scored yet.
    public var answer: String?
    /// The extraction rule (`letter`, `imported`, `unparsed`, …); `nil` when not scored yet.
    public var method: String?
    public var unparsedReason: String?
    public var score: Double?
    public var correct: Bool?
    public var latencySeconds: Double?
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var attempts: Int
}

extension RunRecord {
    /// The run's `notes` JSON as text values (numbers and booleans as their JSON text). Notes
    /// that are not a JSON object (never written by Assay) read as no notes rather than an error,
    /// so a hand-edited database still lists and reports.
    public var noteValues: [String: String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(notes.utf8)) as? [String: Any] else { return [:] }
        var values: [String: String] = [:]
        for (key, value) in object {
            switch value {
            case let text as String: values[key] = text
            case let number as NSNumber: values[key] = number.stringValue
            default:
                if let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) {
                    values[key] = String(decoding: data, as: UTF8.self)
                }
            }
        }
        return values
    }

    /// The note naming the `--suites-dir` folders a run's suites came from.
    public static let suitesDirsNote = "suites_dirs"

    /// The `--suites-dir` folders recorded with the run (absolute paths), so that `score`,
    /// `compare` and `report` find its user suites without the flag.
    public var suitesDirectories: [String] {
        guard let text = noteValues[Self.suitesDirsNote],
              let list = try? JSONDecoder().decode([String].self, from: Data(text.utf8)) else { return [] }
        return list
    }

    /// The note value for a list of folders.
    public static func encodeDirectories(_ directories: [String]) -> String {
        // invariant: an array of strings always encodes.
        guard let data = try? JSONEncoder().encode(directories) else { return "[]" }
        return String(decoding: data, as: UTF8.self)
    }

    /// Canonical notes JSON (sorted keys) for a set of values.
    public static func notesJSON(_ values: [String: String]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // invariant: a dictionary of strings always encodes.
        guard let data = try? encoder.encode(values) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

extension Store {
    /// Opens an existing database for reading only: never creates the file (a mistyped `--db`
    /// must not leave an empty database behind) and never migrates it.
    public convenience init(existingPath path: String, readOnly: Bool) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError.cannotOpen(path: path, "no such database file (check --db)")
        }
        try self.init(path: path, readOnly: readOnly, create: false)
    }

    // MARK: - Run notes

    /// Sets (or, for `nil` values, removes) notes of a run, keeping the others, in one transaction.
    public func updateNotes(run name: String, _ changes: [String: String?]) throws {
        try pool.write { db in
            guard let record = try Self.run(named: name, db) else {
                throw StoreError.unknownRun(name, known: try String.fetchAll(db, sql: "SELECT name FROM runs ORDER BY id"), path: path)
            }
            var values = record.noteValues
            for (key, value) in changes { values[key] = value }
            try db.execute(sql: "UPDATE runs SET notes = ? WHERE id = ?", arguments: [RunRecord.notesJSON(values), record.id])
        }
    }

    // MARK: - Browsing

    /// Every run with its suites, counts and status, oldest first.
    public func runSummaries() throws -> [RunSummary] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM runs ORDER BY id").map(Self.run).map { run in
                let suites = try String.fetchAll(db, sql: "SELECT suite_id FROM run_suites WHERE run_id = ? ORDER BY suite_id", arguments: [run.id])
                let items = try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(item_count), 0) FROM run_suites WHERE run_id = ?", arguments: [run.id]) ?? 0
                let counts = try Row.fetchOne(db, sql: """
                    SELECT COUNT(*) AS responses,
                           COALESCE(SUM(status = 'error'), 0) AS errors,
                           COALESCE(SUM(status != 'error' AND sample_index = 0), 0) AS n
                    FROM responses WHERE run_id = ?
                    """, arguments: [run.id])
                let scored = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM suite_results WHERE run_id = ?", arguments: [run.id]) ?? 0
                let missing = try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(missing), 0) FROM suite_results WHERE run_id = ?", arguments: [run.id]) ?? 0
                let errors: Int = counts?["errors"] ?? 0
                return RunSummary(
                    name: run.name, model: run.model, backend: run.backend, suites: suites, n: counts?["n"] ?? 0,
                    responses: counts?["responses"] ?? 0, errors: errors, items: items, scoredSuites: scored,
                    createdAt: run.createdAt,
                    status: RunSummary.status(suites: suites.count, scored: scored, errors: errors, missing: missing,
                                              shard: run.noteValues["shard"]))
            }
        }
    }

    /// A run's responses (of one suite, or all) joined with their extractions and scores, in
    /// suite, dataset and sample order.
    public func exportRows(runID: Int64, suiteID: String? = nil) throws -> [ResponseExportRow] {
        try pool.read { db in
            var sql = """
                SELECT r.suite_id, r.item_id, r.sample_index, r.cache_key, r.status, r.error_kind, r.error_message, r.text,
                       r.latency_seconds, r.prompt_tokens, r.completion_tokens, r.attempts,
                       e.answer, e.method, e.reason, s.value, s.correct
                FROM responses r
                LEFT JOIN run_suites rs ON rs.run_id = r.run_id AND rs.suite_id = r.suite_id
                LEFT JOIN items i ON i.suite_id = r.suite_id AND i.dataset_sha256 = rs.dataset_sha256 AND i.item_id = r.item_id
                LEFT JOIN extractions e ON e.response_id = r.id
                LEFT JOIN item_scores s ON s.response_id = r.id
                WHERE r.run_id = ?
                """
            var arguments: StatementArguments = [runID]
            if let suiteID {
                sql += " AND r.suite_id = ?"
                arguments += [suiteID]
            }
            sql += " ORDER BY r.suite_id, i.ordinal, r.item_id, r.sample_index"
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                let correct: Int64? = row["correct"]
                return ResponseExportRow(
                    suite: row["suite_id"], itemID: row["item_id"], sample: row["sample_index"], cacheKey: row["cache_key"],
                    status: ResponseStatus(rawValue: row["status"]) ?? .error, errorKind: row["error_kind"],
                    errorMessage: row["error_message"], response: row["text"], answer: row["answer"], method: row["method"],
                    unparsedReason: row["reason"], score: row["value"], correct: correct.map { $0 != 0 },
                    latencySeconds: row["latency_seconds"], promptTokens: row["prompt_tokens"],
                    completionTokens: row["completion_tokens"], attempts: row["attempts"])
            }
        }
    }
}

extension RunSummary {
    /// One word or phrase for a run's state, most urgent first: a shard that needs merging, suites
    /// not scored, errors to retry, items without a response, else complete.
    public static func status(suites: Int, scored: Int, errors: Int, missing: Int, shard: String?) -> String {
        var parts: [String] = []
        if let shard { parts.append("shard \(shard) (merge with the other shards)") }
        if suites == 0 {
            parts.append("empty")
        } else if scored < suites {
            parts.append(scored == 0 ? "not scored" : "\(scored) of \(suites) suites scored")
        }
        if errors > 0 { parts.append("\(errors) error\(errors == 1 ? "" : "s")") }
        if missing > errors { parts.append("\(missing - errors) missing") }
        return parts.isEmpty ? "complete" : parts.joined(separator: ", ")
    }
}
