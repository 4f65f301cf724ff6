import AssayCore
import Foundation
import GRDB

/// A critic's judgement of one match of a self-critic tournament in one order: which of the two
/// shown responses it prefers. Cached by content (critic identity, prompt with both responses,
/// parameters), so a second selection over the same candidates asks nothing new.
public struct CriticJudgementRecord: Sendable, Hashable {
    public var cacheKey: String
    /// The critic backend's identity (canonical JSON).
    public var critic: String
    /// The critic prompt's version (`CriticPrompt.version`).
    public var task: String
    public var suiteID: String
    public var itemID: String
    /// Cache keys of the responses shown as 1 and as 2.
    public var firstResponseKey: String
    public var secondResponseKey: String
    /// The raw critic call (text, status, usage).
    public var response: ModelResponse
    /// 1 or 2; `nil` when the reply names neither (or the call failed).
    public var verdict: Int?
    public var verdictMethod: String?

    public init(cacheKey: String, critic: String, task: String, suiteID: String, itemID: String, firstResponseKey: String,
                secondResponseKey: String, response: ModelResponse, verdict: Int?, verdictMethod: String?) {
        self.cacheKey = cacheKey
        self.critic = critic
        self.task = task
        self.suiteID = suiteID
        self.itemID = itemID
        self.firstResponseKey = firstResponseKey
        self.secondResponseKey = secondResponseKey
        self.response = response
        self.verdict = verdict
        self.verdictMethod = verdictMethod
    }
}

/// Which candidate a derived run (`NAME@METHOD-n`) took for one item, and why.
public struct SelectionRecord: Sendable, Hashable {
    public var suiteID: String
    public var itemID: String
    public var method: String
    public var n: Int
    /// The sample index of the chosen candidate in the source run; `nil` when none could be
    /// chosen (every candidate failed, or a critic call failed), and the derived response is an error.
    public var chosenSample: Int?
    /// JSON: votes, the candidates that were correct, or the tournament's matches.
    public var reason: String
    /// Critic calls the choice needed (asked or found in the cache).
    public var criticCalls: Int

    public init(suiteID: String, itemID: String, method: String, n: Int, chosenSample: Int?, reason: String, criticCalls: Int = 0) {
        self.suiteID = suiteID
        self.itemID = itemID
        self.method = method
        self.n = n
        self.chosenSample = chosenSample
        self.reason = reason
        self.criticCalls = criticCalls
    }
}

/// One derived response with the selection that produced it.
public struct SelectedResponse: Sendable {
    public var response: NewResponse
    public var selection: SelectionRecord

    public init(response: NewResponse, selection: SelectionRecord) {
        self.response = response
        self.selection = selection
    }
}

extension Store {
    // MARK: - Critic judgements

    public func criticJudgement(cacheKey: String) throws -> CriticJudgementRecord? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT *, \(Self.textBytesColumn) FROM critic_judgements WHERE cache_key = ?", arguments: [cacheKey])
                .map(Self.criticJudgement)
        }
    }

    /// Stores one critic call in its own transaction, the moment it arrives (a later call under
    /// the same key, a retry of a failed one, replaces it).
    public func recordCriticJudgement(_ record: CriticJudgementRecord) async throws {
        let r = record.response
        let failed = r.status == .error
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO critic_judgements (cache_key, critic, task, suite_id, item_id, first_response_key,
                        second_response_key, text, status, error_kind, error_message, verdict, verdict_method, attempts,
                        prompt_tokens, completion_tokens, latency_seconds, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (cache_key) DO UPDATE SET
                        text = excluded.text, status = excluded.status, error_kind = excluded.error_kind,
                        error_message = excluded.error_message, verdict = excluded.verdict,
                        verdict_method = excluded.verdict_method, attempts = excluded.attempts,
                        prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
                        latency_seconds = excluded.latency_seconds, created_at = excluded.created_at
                    """,
                arguments: [record.cacheKey, record.critic, record.task, record.suiteID, record.itemID, record.firstResponseKey,
                            record.secondResponseKey, Self.textBytes(failed ? "" : r.text), r.status.rawValue, r.errorKind,
                            r.errorMessage.map { Redaction.userInfo(in: $0) },
                            failed ? nil : record.verdict, failed ? nil : record.verdictMethod, r.attempts,
                            r.promptTokens, r.completionTokens, r.latencySeconds, Self.now()])
        }
    }

    static func criticJudgement(_ row: Row) -> CriticJudgementRecord {
        CriticJudgementRecord(
            cacheKey: row["cache_key"], critic: row["critic"], task: row["task"], suiteID: row["suite_id"], itemID: row["item_id"],
            firstResponseKey: row["first_response_key"], secondResponseKey: row["second_response_key"],
            response: ModelResponse(
                text: fullText(row), status: ResponseStatus(rawValue: row["status"]) ?? .error, errorKind: row["error_kind"],
                errorMessage: row["error_message"], promptTokens: row["prompt_tokens"], completionTokens: row["completion_tokens"],
                latencySeconds: row["latency_seconds"], attempts: row["attempts"]),
            verdict: row["verdict"], verdictMethod: row["verdict_method"])
    }

    // MARK: - Derived runs

    /// Writes a derived run in one transaction: creates it (or, when a run of this name exists,
    /// requires the same backend identity unless `replace`, which deletes the old one first),
    /// registers the source's suites, takes over how the source was judged (so a judged suite's
    /// verdicts still apply to the copied responses), and stores every selected response with
    /// its selection record.
    @discardableResult
    public func writeDerivedRun(_ run: NewRun, source: RunRecord, suites: [SuiteRegistration],
                                selected: [SelectedResponse], replace: Bool) throws -> RunRecord {
        try pool.write { db in
            if let existing = try Self.run(named: run.name, db), existing.backendIdentity != run.backendIdentity {
                guard replace else {
                    throw StoreError.derivedRunMismatch(run: run.name, existing: existing.backendIdentity, requested: run.backendIdentity)
                }
                try db.execute(sql: "DELETE FROM runs WHERE id = ?", arguments: [existing.id])
            }
            let record = try Self.ensureRun(run, db)
            try db.execute(sql: "UPDATE runs SET notes = ?, generation_params = ? WHERE id = ?",
                           arguments: [run.notes, run.generationParams, record.id])
            for registration in suites {
                try Self.registerSuite(runID: record.id, registration, items: [], runName: run.name, db)
            }
            try db.execute(sql: """
                INSERT INTO run_suite_judging (run_id, suite_id, mode, judge, task, updated_at)
                SELECT ?, suite_id, mode, judge, task, updated_at FROM run_suite_judging WHERE run_id = ?
                ON CONFLICT (run_id, suite_id) DO UPDATE SET mode = excluded.mode, judge = excluded.judge,
                    task = excluded.task, updated_at = excluded.updated_at
                """, arguments: [record.id, source.id])
            let selection = try db.makeStatement(sql: """
                INSERT INTO selections (run_id, suite_id, item_id, source_run_id, method, n, chosen_sample, reason, critic_calls)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_id, suite_id, item_id) DO UPDATE SET source_run_id = excluded.source_run_id,
                    method = excluded.method, n = excluded.n, chosen_sample = excluded.chosen_sample,
                    reason = excluded.reason, critic_calls = excluded.critic_calls
                """)
            for entry in selected {
                _ = try Self.upsertResponse(runID: record.id, entry.response, db)
                let s = entry.selection
                try selection.execute(arguments: [record.id, s.suiteID, s.itemID, source.id, s.method, s.n, s.chosenSample,
                                                  s.reason, s.criticCalls])
            }
            return try Self.run(named: run.name, db) ?? record
        }
    }

    /// The selection records of a derived run, by suite then item order of storage.
    public func selections(runID: Int64) throws -> [SelectionRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM selections WHERE run_id = ? ORDER BY suite_id, rowid", arguments: [runID]).map {
                SelectionRecord(suiteID: $0["suite_id"], itemID: $0["item_id"], method: $0["method"], n: $0["n"],
                                chosenSample: $0["chosen_sample"], reason: $0["reason"], criticCalls: $0["critic_calls"])
            }
        }
    }
}

extension StoreError {
    /// A derived run of this name exists but was selected differently (another critic or seed).
    static func derivedRunMismatch(run: String, existing: String, requested: String) -> StoreError {
        .corruptRow(table: "runs", id: run,
                    "run '\(run)' already exists from another selection (\(existing)); this one is \(requested). Pass --replace to rebuild it")
    }
}
