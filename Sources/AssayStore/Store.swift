import AssayCore
import Foundation
import GRDB

/// Problems with the store that a user can act on.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(path: String, String)
    case unknownRun(String, known: [String], path: String)
    case runBackendMismatch(run: String, existing: String, requested: String)
    case datasetMismatch(run: String, suite: String, existing: String, requested: String)
    case corruptRow(table: String, id: String, String)
    case trainingRunMismatch(run: String, differences: [String])

    public var description: String {
        switch self {
        case .cannotOpen(let path, let message): return "cannot open database \(path): \(message)"
        case .unknownRun(let name, let known, let path):
            return "no run named '\(name)' in \(path)" + (known.isEmpty ? " (it has no runs)" : "; runs: \(known.joined(separator: ", "))")
        case .runBackendMismatch(let run, let existing, let requested):
            return "run '\(run)' already exists with backend '\(existing)'; cannot add '\(requested)' responses to it (choose another --run name)"
        case .datasetMismatch(let run, let suite, let existing, let requested):
            return "run '\(run)' already holds suite '\(suite)' over dataset \(existing.prefix(12))…; this dataset is \(requested.prefix(12))… (use a new --run name)"
        case .corruptRow(let table, let id, let message): return "corrupt row \(id) in \(table): \(message)"
        case .trainingRunMismatch(let run, let differences):
            return "training run '\(run)' exists with other settings (\(differences.joined(separator: "; "))); resume it with the same command, or choose another --run name"
        }
    }
}

/// The SQLite store (GRDB, WAL): runs, suites per run, items, responses, extractions, item scores
/// and metrics. Every write is a transaction; a sweep writes each response in its own.
public final class Store: Sendable {
    public let path: String
    let pool: DatabasePool

    /// Opens (creating folders and the file if needed) and migrates the database at `path`.
    public convenience init(path: String) throws {
        try self.init(path: path, readOnly: false, create: true)
    }

    /// Opens the database at `path`. Without `create` the file must exist (see
    /// `init(existingPath:readOnly:)`). A read-only store is not migrated, unless its schema is
    /// older than this build's: then it is opened for writing once to migrate, since queries of
    /// this build expect the current tables.
    init(path: String, readOnly: Bool, create: Bool) throws {
        self.path = path
        if create {
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
            try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        var configuration = Configuration()
        configuration.foreignKeysEnabled = true
        configuration.busyMode = .timeout(30)
        do {
            if readOnly {
                var reading = configuration
                reading.readonly = true
                let pool = try DatabasePool(path: path, configuration: reading)
                if try pool.read({ db in try Schema.migrator.hasCompletedMigrations(db) }) {
                    self.pool = pool
                    return
                }
            }
            pool = try Self.openAndMigrate(path: path, configuration: configuration)
        } catch {
            throw StoreError.cannotOpen(path: path, "\(error)")
        }
    }

    /// Opens the pool and applies pending migrations. Two processes creating one new file at the
    /// same moment (two sweeps started together) collide twice: switching the new file to WAL
    /// fails with "database is locked" instead of waiting, and GRDB reads which migrations are
    /// applied before it takes the write lock, so the slower one can try the first migration
    /// again ("table already exists"). Both are over once the other process has committed, so
    /// those two errors are retried a few times; anything else is reported at once.
    static func openAndMigrate(path: String, configuration: Configuration) throws -> DatabasePool {
        var attempt = 0
        while true {
            do {
                let pool = try DatabasePool(path: path, configuration: configuration)
                try Schema.migrator.migrate(pool)
                return pool
            } catch let error as DatabaseError where attempt < 8 && isTransientOpenError(error) {
                attempt += 1
                Thread.sleep(forTimeInterval: 0.05 * Double(attempt))
            }
        }
    }

    static func isTransientOpenError(_ error: DatabaseError) -> Bool {
        error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED
            || (error.message ?? "").contains("already exists")
    }

    /// Names of the applied migrations, oldest first.
    public func appliedMigrations() throws -> [String] {
        try pool.read { db in try Schema.migrator.appliedMigrations(db) }
    }

    /// The journal mode SQLite reports (`wal`).
    public func journalMode() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    static func now() -> String {
        ISO8601DateFormatter().string(from: Date())
    }

    // MARK: - Runs

    public func runs() throws -> [RunRecord] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM runs ORDER BY id").map(Self.run) }
    }

    public func run(named name: String) throws -> RunRecord? {
        try pool.read { db in try Self.run(named: name, db) }
    }

    /// The run, or an error listing the runs there are.
    public func requireRun(_ name: String) throws -> RunRecord {
        if let run = try run(named: name) { return run }
        throw StoreError.unknownRun(name, known: try runs().map(\.name), path: path)
    }

    static func run(named name: String, _ db: Database) throws -> RunRecord? {
        try Row.fetchOne(db, sql: "SELECT * FROM runs WHERE name = ?", arguments: [name]).map(run)
    }

    static func run(_ row: Row) -> RunRecord {
        RunRecord(
            id: row["id"], name: row["name"], model: row["model"], backend: row["backend"],
            backendIdentity: row["backend_identity"], generationParams: row["generation_params"],
            notes: row["notes"], createdAt: row["created_at"])
    }

    /// Returns the run with this name, creating it if needed. An existing run must have the same
    /// backend kind.
    public func ensureRun(_ new: NewRun) throws -> RunRecord {
        try pool.write { db in try Self.ensureRun(new, db) }
    }

    static func ensureRun(_ new: NewRun, _ db: Database) throws -> RunRecord {
        if let existing = try run(named: new.name, db) {
            guard existing.backend == new.backend else {
                throw StoreError.runBackendMismatch(run: new.name, existing: existing.backend, requested: new.backend)
            }
            return existing
        }
        try db.execute(
            sql: """
                INSERT INTO runs (name, model, backend, backend_identity, generation_params, notes, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [new.name, new.model, new.backend, new.backendIdentity, new.generationParams, new.notes, now()])
        // invariant: the row was inserted just above in this transaction.
        return try run(named: new.name, db)!
    }

    // MARK: - Suites and items

    /// Records that `suite` belongs to the run and stores its items (idempotent).
    public func registerSuite(runID: Int64, _ registration: SuiteRegistration, items: [Item]) throws {
        try pool.write { db in try Self.registerSuite(runID: runID, registration, items: items, runName: nil, db) }
    }

    static func registerSuite(runID: Int64, _ record: SuiteRegistration, items: [Item], runName: String?, _ db: Database) throws {
        if let existing = try Row.fetchOne(
            db, sql: "SELECT dataset_sha256 FROM run_suites WHERE run_id = ? AND suite_id = ?",
            arguments: [runID, record.suiteID]) {
            let sha: String = existing["dataset_sha256"]
            guard sha == record.datasetSHA256 else {
                throw StoreError.datasetMismatch(
                    run: runName ?? String(runID), suite: record.suiteID, existing: sha, requested: record.datasetSHA256)
            }
        }
        try db.execute(
            sql: """
                INSERT INTO run_suites (run_id, suite_id, suite_version, prompt_version, dataset_sha256, dataset_path, item_count)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_id, suite_id) DO UPDATE SET
                    suite_version = excluded.suite_version, prompt_version = excluded.prompt_version,
                    dataset_path = excluded.dataset_path, item_count = excluded.item_count
                """,
            arguments: [runID, record.suiteID, record.suiteVersion, record.promptVersion,
                        record.datasetSHA256, record.datasetPath, record.itemCount])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let statement = try db.makeStatement(sql: """
            INSERT INTO items (suite_id, dataset_sha256, item_id, ordinal, payload) VALUES (?, ?, ?, ?, ?)
            ON CONFLICT (suite_id, dataset_sha256, item_id) DO UPDATE SET ordinal = excluded.ordinal, payload = excluded.payload
            """)
        for (ordinal, item) in items.enumerated() {
            let payload = String(decoding: try encoder.encode(item), as: UTF8.self)
            try statement.execute(arguments: [record.suiteID, record.datasetSHA256, item.id, ordinal, payload])
        }
    }

    /// The suites a run holds, with the suite, prompt and dataset versions it used.
    public func runSuites(runID: Int64) throws -> [SuiteRegistration] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM run_suites WHERE run_id = ? ORDER BY suite_id", arguments: [runID]).map {
                SuiteRegistration(
                    suiteID: $0["suite_id"], suiteVersion: $0["suite_version"], promptVersion: $0["prompt_version"],
                    datasetSHA256: $0["dataset_sha256"], datasetPath: $0["dataset_path"], itemCount: $0["item_count"])
            }
        }
    }

    /// The items of a suite's dataset, in dataset order.
    public func items(suiteID: String, datasetSHA256: String) throws -> [Item] {
        try pool.read { db in
            let decoder = JSONDecoder()
            return try Row.fetchAll(
                db, sql: "SELECT item_id, payload FROM items WHERE suite_id = ? AND dataset_sha256 = ? ORDER BY ordinal",
                arguments: [suiteID, datasetSHA256]
            ).map { row in
                let payload: String = row["payload"]
                do {
                    return try decoder.decode(Item.self, from: Data(payload.utf8))
                } catch {
                    throw StoreError.corruptRow(table: "items", id: row["item_id"], "\(error)")
                }
            }
        }
    }

    // MARK: - Responses

    /// Stores one response in its own transaction (a later response for the same run, item and
    /// sample replaces it, and drops the old extraction and score). Returns the response id.
    @discardableResult
    public func recordResponse(runID: Int64, _ response: NewResponse) throws -> Int64 {
        try pool.write { db in try Self.upsertResponse(runID: runID, response, db) }
    }

    static func upsertResponse(runID: Int64, _ new: NewResponse, _ db: Database) throws -> Int64 {
        let r = new.response
        try db.execute(
            sql: """
                INSERT INTO responses (run_id, suite_id, item_id, sample_index, cache_key, text, status, error_kind,
                    error_message, prompt_tokens, completion_tokens, latency_seconds, attempts, imported_extraction, created_at)
                VALUES (?, ?, ?, ?, ?, CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (run_id, suite_id, item_id, sample_index) DO UPDATE SET
                    cache_key = excluded.cache_key, text = excluded.text, status = excluded.status,
                    error_kind = excluded.error_kind, error_message = excluded.error_message,
                    prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
                    latency_seconds = excluded.latency_seconds, attempts = excluded.attempts,
                    imported_extraction = excluded.imported_extraction, created_at = excluded.created_at
                """,
            arguments: [runID, new.suiteID, new.itemID, new.sampleIndex, new.cacheKey,
                        Self.textBytes(r.status == .error ? "" : r.text), r.status.rawValue, r.errorKind,
                        r.errorMessage.map { Redaction.userInfo(in: $0) },
                        r.promptTokens, r.completionTokens, r.latencySeconds, r.attempts, new.importedExtraction, now()])
        let id = try Int64.fetchOne(
            db, sql: "SELECT id FROM responses WHERE run_id = ? AND suite_id = ? AND item_id = ? AND sample_index = ?",
            arguments: [runID, new.suiteID, new.itemID, new.sampleIndex]) ?? db.lastInsertedRowID
        try db.execute(sql: "DELETE FROM extractions WHERE response_id = ?", arguments: [id])
        try db.execute(sql: "DELETE FROM item_scores WHERE response_id = ?", arguments: [id])
        return id
    }

    public func responses(runID: Int64, suiteID: String) throws -> [ResponseRecord] {
        try pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT *, \(Self.textBytesColumn) FROM responses WHERE run_id = ? AND suite_id = ? ORDER BY id",
                arguments: [runID, suiteID]
            ).map(Self.response)
        }
    }

    /// The number of responses a run holds (all suites).
    public func responseCount(runID: Int64) throws -> Int {
        try pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM responses WHERE run_id = ?", arguments: [runID]) ?? 0
        }
    }

    /// Response text as UTF-8 bytes, bound as a BLOB with its length and stored as
    /// `CAST(? AS TEXT)`: GRDB binds and reads a Swift `String` as a C string, which silently
    /// cut an answer at its first NUL byte.
    static func textBytes(_ text: String) -> Data { Data(text.utf8) }

    /// The select-list term that reads `text` back whole (see `textBytes`).
    static let textBytesColumn = "CAST(text AS BLOB) AS text_bytes"

    /// The whole text of a row selected with `textBytesColumn` (or `text` when it was not).
    static func fullText(_ row: Row) -> String {
        if let bytes: Data = row["text_bytes"] { return String(decoding: bytes, as: UTF8.self) }
        return row["text"] ?? ""
    }

    static func response(_ row: Row) -> ResponseRecord {
        let status = ResponseStatus(rawValue: row["status"]) ?? .error
        return ResponseRecord(
            id: row["id"], runID: row["run_id"], suiteID: row["suite_id"], itemID: row["item_id"],
            sampleIndex: row["sample_index"], cacheKey: row["cache_key"],
            response: ModelResponse(
                text: fullText(row), status: status, errorKind: row["error_kind"], errorMessage: row["error_message"],
                promptTokens: row["prompt_tokens"], completionTokens: row["completion_tokens"],
                latencySeconds: row["latency_seconds"], attempts: row["attempts"]),
            importedExtraction: row["imported_extraction"], createdAt: row["created_at"])
    }

    // MARK: - Import (one transaction)

    /// Creates or reuses the run, registers the suite and its items, and stores every response,
    /// all in one transaction: a failure leaves the database as it was.
    @discardableResult
    public func importResponses(run: NewRun, suite: SuiteRegistration, items: [Item], responses: [NewResponse]) throws -> RunRecord {
        try pool.write { db in
            let record = try Self.ensureRun(run, db)
            try Self.registerSuite(runID: record.id, suite, items: items, runName: run.name, db)
            for response in responses {
                _ = try Self.upsertResponse(runID: record.id, response, db)
            }
            return record
        }
    }

    // MARK: - Scores and metrics

    /// Replaces the extractions and scores of the given responses and the suite's metrics, in
    /// one transaction.
    public func saveScores(runID: Int64, suiteID: String, updates: [ScoreUpdate], metrics: SuiteMetrics, scorerVersion: String) throws {
        try pool.write { db in
            let time = Self.now()
            let extraction = try db.makeStatement(sql: """
                INSERT OR REPLACE INTO extractions (response_id, answer, method, reason, scorer_version) VALUES (?, ?, ?, ?, ?)
                """)
            let score = try db.makeStatement(sql: """
                INSERT OR REPLACE INTO item_scores (response_id, value, correct, normalized, scorer_version, scored_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """)
            for update in updates {
                var reason: String?
                if case .unparsed(let why) = update.extraction { reason = why }
                try extraction.execute(arguments: [update.responseID, update.extraction.answer, update.extraction.method, reason, scorerVersion])
                try score.execute(arguments: [update.responseID, update.score.value, update.score.correct, update.score.normalized, scorerVersion, time])
            }
            try db.execute(sql: "DELETE FROM metrics WHERE run_id = ? AND suite_id = ?", arguments: [runID, suiteID])
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO suite_results (run_id, suite_id, score, n, unparsed, missing, scorer_version, computed_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [runID, suiteID, metrics.score, metrics.n, metrics.unparsed, metrics.missing, scorerVersion, time])
            let metric = try db.makeStatement(sql: "INSERT INTO metrics (run_id, suite_id, name, value) VALUES (?, ?, ?, ?)")
            for (name, value) in metrics.metrics where value.isFinite {
                try metric.execute(arguments: [runID, suiteID, name, value])
            }
        }
    }

    /// The stored metrics of a run, by suite.
    public func suiteResults(runID: Int64) throws -> [SuiteResultRecord] {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT * FROM suite_results WHERE run_id = ? ORDER BY suite_id", arguments: [runID])
            return try rows.map { row in
                let suite: String = row["suite_id"]
                var metrics: [String: Double] = [:]
                for metric in try Row.fetchAll(
                    db, sql: "SELECT name, value FROM metrics WHERE run_id = ? AND suite_id = ?", arguments: [runID, suite]) {
                    metrics[metric["name"]] = metric["value"]
                }
                return SuiteResultRecord(
                    suiteID: suite,
                    metrics: SuiteMetrics(score: row["score"], n: row["n"], unparsed: row["unparsed"], missing: row["missing"], metrics: metrics),
                    scorerVersion: row["scorer_version"], computedAt: row["computed_at"])
            }
        }
    }

    /// Scored responses of a run's suite joined with their items (responses that are errors, or
    /// not scored yet, are left out).
    public func scores(runID: Int64, suiteID: String) throws -> [StoredScore] {
        try pool.read { db in
            let decoder = JSONDecoder()
            let rows = try Row.fetchAll(db, sql: """
                SELECT r.id, r.sample_index, i.payload, e.answer, e.method, e.reason,
                       s.value, s.correct, s.normalized, s.scorer_version
                FROM responses r
                JOIN run_suites rs ON rs.run_id = r.run_id AND rs.suite_id = r.suite_id
                JOIN items i ON i.suite_id = r.suite_id AND i.dataset_sha256 = rs.dataset_sha256 AND i.item_id = r.item_id
                JOIN extractions e ON e.response_id = r.id
                JOIN item_scores s ON s.response_id = r.id
                WHERE r.run_id = ? AND r.suite_id = ? AND r.status != 'error'
                ORDER BY i.ordinal, r.sample_index
                """, arguments: [runID, suiteID])
            return try rows.map { row in
                let payload: String = row["payload"]
                let item: Item
                do {
                    item = try decoder.decode(Item.self, from: Data(payload.utf8))
                } catch {
                    throw StoreError.corruptRow(table: "items", id: "\(row["id"] as Int64)", "\(error)")
                }
                let answer: String? = row["answer"]
                let extraction: Extraction = answer.map { .answer($0, method: row["method"]) }
                    ?? .unparsed(reason: row["reason"] ?? "")
                let correct: Int64? = row["correct"]
                return StoredScore(
                    item: item, sampleIndex: row["sample_index"], extraction: extraction,
                    score: ItemScore(value: row["value"], correct: correct.map { $0 != 0 }, normalized: row["normalized"]),
                    scorerVersion: row["scorer_version"])
            }
        }
    }
}
