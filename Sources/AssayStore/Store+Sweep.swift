import AssayCore
import Foundation
import GRDB

/// What a sweep needs to know about a response already stored: enough to decide whether to ask
/// again (a different cache key, or an error) or to keep it.
public struct StoredResponseKey: Sendable, Hashable {
    public var cacheKey: String
    public var status: ResponseStatus
}

/// A judge call as stored: cached by its own key like a response, and linked to the response it
/// judged by that response's cache key.
public struct JudgementRecord: Sendable, Hashable {
    public var cacheKey: String
    /// The judge backend's identity (canonical JSON).
    public var judge: String
    /// `<suite>/<task>@<version>`.
    public var task: String
    public var responseCacheKey: String
    public var response: ModelResponse
    /// What the judge's reply was read as (an answer or a grade); `nil` when it was unreadable.
    public var verdict: String?

    public init(cacheKey: String, judge: String, task: String, responseCacheKey: String, response: ModelResponse, verdict: String?) {
        self.cacheKey = cacheKey
        self.judge = judge
        self.task = task
        self.responseCacheKey = responseCacheKey
        self.response = response
        self.verdict = verdict
    }
}

/// How a run's suite was judged: by which judge, or explicitly not (`--no-judge`).
public struct SuiteJudging: Sendable, Hashable {
    /// `judge`: unparsed responses went to a judge; `off`: the user chose rules only.
    public enum Mode: String, Sendable, Hashable { case judge, off }
    public var suiteID: String
    public var mode: Mode
    /// The judge's identity (canonical JSON) when `mode` is `judge`.
    public var judge: String?
    public var task: String

    public init(suiteID: String, mode: Mode, judge: String?, task: String) {
        self.suiteID = suiteID
        self.mode = mode
        self.judge = judge
        self.task = task
    }
}

/// What `assay merge` did for one run.
public struct MergedRun: Sendable, Hashable {
    public var run: String
    public var shard: String
    /// Responses copied that the target did not have.
    public var added: Int
    /// Error responses in the target replaced by a shard's answer.
    public var repaired: Int
    /// Responses both had; the target's were kept.
    public var kept: Int
}

extension StoreError {
    /// A shard's run cannot be merged into the target's run of the same name.
    static func mergeMismatch(run: String, shard: String, _ what: String) -> StoreError {
        .corruptRow(table: "runs", id: run, "cannot merge \(shard): its run '\(run)' has a different \(what) than the target's")
    }
}

extension Store {
    // MARK: - Sweep bookkeeping

    /// The stored responses of a run's suite by `item id` and sample index.
    public func responseKeys(runID: Int64, suiteID: String) throws -> [String: [Int: StoredResponseKey]] {
        try pool.read { db in
            var keys: [String: [Int: StoredResponseKey]] = [:]
            let rows = try Row.fetchCursor(
                db, sql: "SELECT item_id, sample_index, cache_key, status FROM responses WHERE run_id = ? AND suite_id = ?",
                arguments: [runID, suiteID])
            while let row = try rows.next() {
                let status = ResponseStatus(rawValue: row["status"]) ?? .error
                keys[row["item_id"], default: [:]][row["sample_index"]] = StoredResponseKey(cacheKey: row["cache_key"], status: status)
            }
            return keys
        }
    }

    /// A usable (not failed) response that another run stored for the same item and sample under
    /// this cache key, for reuse. Only the same item counts: two items whose prompts happen to be
    /// identical are still separate draws.
    public func reusableResponse(cacheKey: String, suiteID: String, itemID: String, sampleIndex: Int) throws -> ModelResponse? {
        try pool.read { db in
            try Row.fetchOne(
                db, sql: """
                    SELECT *, \(Self.textBytesColumn) FROM responses WHERE cache_key = ? AND suite_id = ? AND item_id = ? AND sample_index = ?
                        AND status != 'error'
                    ORDER BY id LIMIT 1
                    """,
                arguments: [cacheKey, suiteID, itemID, sampleIndex]
            ).map { Self.response($0).response }
        }
    }

    /// Whether the file passes SQLite's own consistency check (`PRAGMA integrity_check`).
    public func integrityCheck() throws -> String {
        try pool.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check").joined(separator: "; ") }
    }

    /// `recordResponse` for async callers: the write runs on the store's writer queue while the
    /// calling task is suspended, so a sweep's HTTP tasks keep the (few) cooperative threads.
    @discardableResult
    public func recordResponse(runID: Int64, _ response: NewResponse) async throws -> Int64 {
        try await pool.write { db in try Self.upsertResponse(runID: runID, response, db) }
    }

    /// The integer a read-only query returns (counts for diagnostics and tests).
    public func integer(_ sql: String) throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
    }

    // MARK: - Judgements

    public func judgement(cacheKey: String) throws -> JudgementRecord? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM judgements WHERE cache_key = ?", arguments: [cacheKey]).map(Self.judgement)
        }
    }

    /// The latest usable judgement of a response by a judge for a task.
    public func judgement(responseCacheKey: String, task: String, judge: String) throws -> JudgementRecord? {
        try pool.read { db in
            try Row.fetchOne(
                db, sql: """
                    SELECT * FROM judgements WHERE response_cache_key = ? AND task = ? AND judge = ? AND status != 'error'
                    ORDER BY id DESC LIMIT 1
                    """,
                arguments: [responseCacheKey, task, judge]
            ).map(Self.judgement)
        }
    }

    /// Stores a judge call in its own transaction (a later call under the same key replaces it).
    public func recordJudgement(_ record: JudgementRecord) throws {
        let r = record.response
        try pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO judgements (cache_key, judge, task, response_cache_key, text, status, error_kind, error_message,
                        verdict, attempts, prompt_tokens, completion_tokens, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (cache_key) DO UPDATE SET
                        text = excluded.text, status = excluded.status, error_kind = excluded.error_kind,
                        error_message = excluded.error_message, verdict = excluded.verdict, attempts = excluded.attempts,
                        prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
                        created_at = excluded.created_at
                    """,
                arguments: [record.cacheKey, record.judge, record.task, record.responseCacheKey,
                            r.status == .error ? "" : r.text, r.status.rawValue, r.errorKind,
                            r.errorMessage.map { Redaction.userInfo(in: $0) },
                            r.status == .error ? nil : record.verdict, r.attempts, r.promptTokens, r.completionTokens, Self.now()])
        }
    }

    static func judgement(_ row: Row) -> JudgementRecord {
        JudgementRecord(
            cacheKey: row["cache_key"], judge: row["judge"], task: row["task"], responseCacheKey: row["response_cache_key"],
            response: ModelResponse(
                text: row["text"], status: ResponseStatus(rawValue: row["status"]) ?? .error, errorKind: row["error_kind"],
                errorMessage: row["error_message"], promptTokens: row["prompt_tokens"], completionTokens: row["completion_tokens"],
                attempts: row["attempts"]),
            verdict: row["verdict"])
    }

    /// Records how a run's suite is judged (replacing an earlier choice).
    public func setJudging(runID: Int64, _ judging: SuiteJudging) throws {
        try pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO run_suite_judging (run_id, suite_id, mode, judge, task, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (run_id, suite_id) DO UPDATE SET mode = excluded.mode, judge = excluded.judge,
                        task = excluded.task, updated_at = excluded.updated_at
                    """,
                arguments: [runID, judging.suiteID, judging.mode.rawValue, judging.judge, judging.task, Self.now()])
        }
    }

    /// How each of a run's suites was judged, by suite id (suites without a judge step are absent).
    public func judging(runID: Int64) throws -> [String: SuiteJudging] {
        try pool.read { db in
            var result: [String: SuiteJudging] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM run_suite_judging WHERE run_id = ?", arguments: [runID]) {
                let suite: String = row["suite_id"]
                result[suite] = SuiteJudging(
                    suiteID: suite, mode: SuiteJudging.Mode(rawValue: row["mode"]) ?? .off, judge: row["judge"], task: row["task"])
            }
            return result
        }
    }

    // MARK: - Merge

    /// Keeps the merged run's notes true: it is no longer one shard (`shard` goes, the shards
    /// merged so far are listed under `merged_shards`), and settings only a shard recorded are
    /// kept. Scoring reads `shard` to tell other shards' items from missing ones.
    static func recordMerge(into targetID: Int64, from shardRun: RunRecord, shardPath: String, _ db: Database) throws {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE id = ?", arguments: [targetID]) else { return }
        var values = run(row).noteValues
        let shardValues = shardRun.noteValues
        for (key, value) in shardValues where values[key] == nil { values[key] = value }
        var shards = (values["merged_shards"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for part in [values["shard"], shardValues["shard"] ?? URL(fileURLWithPath: shardPath).lastPathComponent].compactMap({ $0 })
        where !shards.contains(part) {
            shards.append(part)
        }
        values["shard"] = nil
        values["merged_shards"] = shards.joined(separator: ", ")
        try db.execute(sql: "UPDATE runs SET notes = ? WHERE id = ?", arguments: [RunRecord.notesJSON(values), targetID])
    }

    /// Copies every run of the database at `shardPath` into this one, matching runs by name.
    /// A run that exists in both must have the same backend identity and generation parameters,
    /// and each suite the same dataset. Responses the target lacks are added; a target response
    /// that is an error is replaced by the shard's answer; otherwise the target's is kept.
    /// Judgements are merged by cache key. One transaction per shard: a failure changes nothing.
    public func merge(shardPath: String) throws -> [MergedRun] {
        // Opening the shard as a store migrates it to the current schema first.
        _ = try Store(path: shardPath)
        return try pool.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ? AS shard", arguments: [shardPath])
            defer { try? db.execute(sql: "DETACH DATABASE shard") }
            var merged: [MergedRun] = []
            try db.inTransaction {
                for row in try Row.fetchAll(db, sql: "SELECT * FROM shard.runs ORDER BY id") {
                    let shardRun = Self.run(row)
                    let target = try Self.ensureRun(NewRun(
                        name: shardRun.name, model: shardRun.model, backend: shardRun.backend,
                        backendIdentity: shardRun.backendIdentity, generationParams: shardRun.generationParams,
                        notes: shardRun.notes), db)
                    guard target.backendIdentity == shardRun.backendIdentity else {
                        throw StoreError.mergeMismatch(run: shardRun.name, shard: shardPath, "backend identity")
                    }
                    guard target.generationParams == shardRun.generationParams else {
                        throw StoreError.mergeMismatch(run: shardRun.name, shard: shardPath, "generation parameters")
                    }
                    for suite in try Row.fetchAll(db, sql: "SELECT * FROM shard.run_suites WHERE run_id = ?", arguments: [shardRun.id]) {
                        let registration = SuiteRegistration(
                            suiteID: suite["suite_id"], suiteVersion: suite["suite_version"], promptVersion: suite["prompt_version"],
                            datasetSHA256: suite["dataset_sha256"], datasetPath: suite["dataset_path"], itemCount: suite["item_count"])
                        try Self.registerSuite(runID: target.id, registration, items: [], runName: shardRun.name, db)
                    }
                    try db.execute(sql: """
                        INSERT INTO items (suite_id, dataset_sha256, item_id, ordinal, payload)
                        SELECT suite_id, dataset_sha256, item_id, ordinal, payload FROM shard.items WHERE true
                        ON CONFLICT (suite_id, dataset_sha256, item_id) DO NOTHING
                        """)
                    let before = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM responses WHERE run_id = ?", arguments: [target.id]) ?? 0
                    let shardCount = try Int.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM shard.responses WHERE run_id = ?", arguments: [shardRun.id]) ?? 0
                    // Target errors that the shard answered: their old extractions and scores go.
                    let repairable = """
                        SELECT r.id FROM responses r JOIN shard.responses s
                          ON s.run_id = ? AND s.suite_id = r.suite_id AND s.item_id = r.item_id AND s.sample_index = r.sample_index
                        WHERE r.run_id = ? AND r.status = 'error' AND s.status != 'error'
                        """
                    let repaired = try Int.fetchOne(
                        db, sql: "SELECT COUNT(*) FROM (\(repairable))", arguments: [shardRun.id, target.id]) ?? 0
                    try db.execute(sql: "DELETE FROM extractions WHERE response_id IN (\(repairable))", arguments: [shardRun.id, target.id])
                    try db.execute(sql: "DELETE FROM item_scores WHERE response_id IN (\(repairable))", arguments: [shardRun.id, target.id])
                    try db.execute(sql: """
                        INSERT INTO responses (run_id, suite_id, item_id, sample_index, cache_key, text, status, error_kind,
                            error_message, prompt_tokens, completion_tokens, latency_seconds, attempts, imported_extraction, created_at)
                        SELECT ?, suite_id, item_id, sample_index, cache_key, text, status, error_kind,
                            error_message, prompt_tokens, completion_tokens, latency_seconds, attempts, imported_extraction, created_at
                        FROM shard.responses WHERE run_id = ?
                        ON CONFLICT (run_id, suite_id, item_id, sample_index) DO UPDATE SET
                            cache_key = excluded.cache_key, text = excluded.text, status = excluded.status,
                            error_kind = excluded.error_kind, error_message = excluded.error_message,
                            prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
                            latency_seconds = excluded.latency_seconds, attempts = excluded.attempts,
                            imported_extraction = excluded.imported_extraction, created_at = excluded.created_at
                        WHERE responses.status = 'error' AND excluded.status != 'error'
                        """, arguments: [target.id, shardRun.id])
                    let after = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM responses WHERE run_id = ?", arguments: [target.id]) ?? 0
                    let added = after - before
                    merged.append(MergedRun(run: shardRun.name, shard: shardPath, added: added, repaired: repaired,
                                            kept: shardCount - added - repaired))
                    try Self.recordMerge(into: target.id, from: shardRun, shardPath: shardPath, db)
                    try db.execute(sql: """
                        INSERT INTO run_suite_judging (run_id, suite_id, mode, judge, task, updated_at)
                        SELECT ?, suite_id, mode, judge, task, updated_at FROM shard.run_suite_judging WHERE run_id = ?
                        ON CONFLICT (run_id, suite_id) DO NOTHING
                        """, arguments: [target.id, shardRun.id])
                }
                try db.execute(sql: """
                    INSERT INTO judgements (cache_key, judge, task, response_cache_key, text, status, error_kind, error_message,
                        verdict, attempts, prompt_tokens, completion_tokens, created_at)
                    SELECT cache_key, judge, task, response_cache_key, text, status, error_kind, error_message,
                        verdict, attempts, prompt_tokens, completion_tokens, created_at FROM shard.judgements WHERE true
                    ON CONFLICT (cache_key) DO UPDATE SET text = excluded.text, status = excluded.status,
                        error_kind = excluded.error_kind, error_message = excluded.error_message, verdict = excluded.verdict,
                        attempts = excluded.attempts, created_at = excluded.created_at
                    WHERE judgements.status = 'error' AND excluded.status != 'error'
                    """)
                return .commit
            }
            return merged
        }
    }

    /// Deletes a run that holds no response (its suites and items go with it); a run with any
    /// response is kept. Returns whether it was deleted.
    @discardableResult
    public func deleteRunIfEmpty(runID: Int64) throws -> Bool {
        try pool.write { db in
            try db.execute(sql: """
                DELETE FROM runs WHERE id = ? AND NOT EXISTS (SELECT 1 FROM responses WHERE run_id = ?)
                """, arguments: [runID, runID])
            return db.changesCount > 0
        }
    }
}
