import AssayCore
import Foundation
import GRDB

/// A GRPO training run (`assay train grpo`): its configuration, data and base model.
public struct TrainingRunRecord: Sendable, Hashable {
    public var id: Int64
    public var name: String
    /// The `--model-path` it started from.
    public var baseModel: String
    public var dataPath: String
    public var dataSHA256: String
    /// Every setting of the run, canonical JSON.
    public var configJSON: String
    public var outDir: String
    /// running, stopped (Ctrl-C, resumable), finished, failed.
    public var status: String
    public var createdAt: String
    public var updatedAt: String
}

/// One optimisation step's measurements, by name (`reward_mean`, `kl`, `logprob_gap_max`, …).
public struct TrainingStepRecord: Sendable, Hashable {
    public var step: Int
    public var metrics: [String: Double]

    public init(step: Int, metrics: [String: Double]) {
        self.step = step
        self.metrics = metrics
    }
}

/// One sampled completion of a step and its reward.
public struct TrainingRolloutRecord: Sendable, Hashable {
    public var step: Int
    public var promptIndex: Int
    public var sample: Int
    public var exampleID: String
    public var text: String
    public var tokens: Int
    public var reward: Double
    public var components: [String: Double]

    public init(step: Int, promptIndex: Int, sample: Int, exampleID: String, text: String, tokens: Int, reward: Double,
                components: [String: Double]) {
        self.step = step
        self.promptIndex = promptIndex
        self.sample = sample
        self.exampleID = exampleID
        self.text = text
        self.tokens = tokens
        self.reward = reward
        self.components = components
    }
}

/// A saved checkpoint of a training run.
public struct TrainingCheckpointRecord: Sendable, Hashable {
    public var step: Int
    /// The model folder (what `assay sweep --model-path` takes).
    public var path: String
    public var parametersFNV1a64: String
}

/// An evaluation run of a training run's checkpoint (step 0: the base model).
public struct TrainingEvaluationRecord: Sendable, Hashable {
    public var step: Int
    public var runName: String
    public var runID: Int64
}

extension Store {
    // MARK: - Training runs

    public func trainingRun(named name: String) throws -> TrainingRunRecord? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM training_runs WHERE name = ?", arguments: [name]).map(Self.trainingRun)
        }
    }

    public func trainingRuns() throws -> [TrainingRunRecord] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM training_runs ORDER BY id").map(Self.trainingRun) }
    }

    /// Creates the training run, or returns the existing one of this name when its configuration,
    /// base model and data checksum are the same (a resume); a different configuration is refused.
    public func ensureTrainingRun(name: String, baseModel: String, dataPath: String, dataSHA256: String, configJSON: String,
                                  outDir: String) throws -> TrainingRunRecord {
        try pool.write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM training_runs WHERE name = ?", arguments: [name]) {
                let existing = Self.trainingRun(row)
                var differences: [String] = []
                if existing.baseModel != baseModel { differences.append("base model \(existing.baseModel) → \(baseModel)") }
                if existing.dataSHA256 != dataSHA256 { differences.append("data checksum \(existing.dataSHA256.prefix(12))… → \(dataSHA256.prefix(12))…") }
                if existing.configJSON != configJSON { differences.append("settings \(existing.configJSON) → \(configJSON)") }
                if existing.outDir != outDir { differences.append("output folder \(existing.outDir) → \(outDir)") }
                guard differences.isEmpty else {
                    throw StoreError.trainingRunMismatch(run: name, differences: differences)
                }
                try db.execute(sql: "UPDATE training_runs SET status = 'running', updated_at = ? WHERE id = ?", arguments: [Self.now(), existing.id])
                return existing
            }
            let now = Self.now()
            try db.execute(
                sql: """
                    INSERT INTO training_runs (name, base_model, data_path, data_sha256, config_json, out_dir, status, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)
                    """,
                arguments: [name, baseModel, dataPath, dataSHA256, configJSON, outDir, now, now])
            let id = db.lastInsertedRowID
            return TrainingRunRecord(id: id, name: name, baseModel: baseModel, dataPath: dataPath, dataSHA256: dataSHA256,
                                     configJSON: configJSON, outDir: outDir, status: "running", createdAt: now, updatedAt: now)
        }
    }

    public func setTrainingStatus(_ runID: Int64, _ status: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE training_runs SET status = ?, updated_at = ? WHERE id = ?", arguments: [status, Self.now(), runID])
        }
    }

    /// Forgets steps (and their rollouts) after `step`: a resumed run recomputes them from its
    /// last checkpoint, and its numbers replace whatever an interrupted process stored.
    public func truncateTraining(_ runID: Int64, after step: Int) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM training_steps WHERE training_run_id = ? AND step > ?", arguments: [runID, step])
            try db.execute(sql: "DELETE FROM training_rollouts WHERE training_run_id = ? AND step > ?", arguments: [runID, step])
            try db.execute(sql: "DELETE FROM training_checkpoints WHERE training_run_id = ? AND step > ?", arguments: [runID, step])
        }
    }

    /// Stores a step's metrics and its kept rollouts in one transaction.
    public func recordTrainingStep(_ runID: Int64, _ step: TrainingStepRecord, rollouts: [TrainingRolloutRecord]) throws {
        let metrics = try Self.canonicalJSON(step.metrics)
        try pool.write { db in
            try db.execute(
                sql: "INSERT OR REPLACE INTO training_steps (training_run_id, step, metrics_json, created_at) VALUES (?, ?, ?, ?)",
                arguments: [runID, step.step, metrics, Self.now()])
            for r in rollouts {
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO training_rollouts
                            (training_run_id, step, prompt_index, sample, example_id, text, tokens, reward, components_json)
                        VALUES (?, ?, ?, ?, ?, CAST(? AS TEXT), ?, ?, ?)
                        """,
                    arguments: [runID, r.step, r.promptIndex, r.sample, r.exampleID, Self.textBytes(r.text), r.tokens, r.reward,
                                try Self.canonicalJSON(r.components)])
            }
            try db.execute(sql: "UPDATE training_runs SET updated_at = ? WHERE id = ?", arguments: [Self.now(), runID])
        }
    }

    public func trainingSteps(_ runID: Int64) throws -> [TrainingStepRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT step, metrics_json FROM training_steps WHERE training_run_id = ? ORDER BY step", arguments: [runID])
                .map { row in
                    let json: String = row["metrics_json"]
                    return TrainingStepRecord(step: row["step"], metrics: Self.decodeMetrics(json))
                }
        }
    }

    public func trainingRollouts(_ runID: Int64, step: Int? = nil) throws -> [TrainingRolloutRecord] {
        try pool.read { db in
            let filter = step == nil ? "" : " AND step = ?"
            var arguments: StatementArguments = [runID]
            if let step { arguments += [step] }
            return try Row.fetchAll(
                db, sql: "SELECT *, CAST(text AS BLOB) AS text_bytes FROM training_rollouts WHERE training_run_id = ?\(filter) ORDER BY step, prompt_index, sample",
                arguments: arguments
            ).map { row in
                let json: String = row["components_json"]
                let bytes: Data? = row["text_bytes"]
                return TrainingRolloutRecord(
                    step: row["step"], promptIndex: row["prompt_index"], sample: row["sample"], exampleID: row["example_id"],
                    text: bytes.map { String(decoding: $0, as: UTF8.self) } ?? "", tokens: row["tokens"], reward: row["reward"],
                    components: Self.decodeMetrics(json))
            }
        }
    }

    // MARK: - Checkpoints and their evaluations

    public func recordTrainingCheckpoint(_ runID: Int64, step: Int, path: String, fingerprint: String) throws {
        try pool.write { db in
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO training_checkpoints (training_run_id, step, path, parameters_fnv1a64, created_at)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [runID, step, path, fingerprint, Self.now()])
        }
    }

    public func trainingCheckpoints(_ runID: Int64) throws -> [TrainingCheckpointRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM training_checkpoints WHERE training_run_id = ? ORDER BY step", arguments: [runID]).map {
                TrainingCheckpointRecord(step: $0["step"], path: $0["path"], parametersFNV1a64: $0["parameters_fnv1a64"])
            }
        }
    }

    /// Links an evaluation run to the checkpoint it evaluated (step 0: the base model).
    public func linkTrainingEvaluation(_ trainingRunID: Int64, step: Int, runID: Int64) throws {
        try pool.write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO training_evaluations (training_run_id, step, run_id) VALUES (?, ?, ?)",
                           arguments: [trainingRunID, step, runID])
        }
    }

    public func trainingEvaluations(_ trainingRunID: Int64) throws -> [TrainingEvaluationRecord] {
        try pool.read { db in
            try Row.fetchAll(
                db, sql: """
                    SELECT e.step, e.run_id, r.name FROM training_evaluations e JOIN runs r ON r.id = e.run_id
                    WHERE e.training_run_id = ? ORDER BY e.step, r.name
                    """, arguments: [trainingRunID]
            ).map { TrainingEvaluationRecord(step: $0["step"], runName: $0["name"], runID: $0["run_id"]) }
        }
    }

    static func trainingRun(_ row: Row) -> TrainingRunRecord {
        TrainingRunRecord(id: row["id"], name: row["name"], baseModel: row["base_model"], dataPath: row["data_path"],
                          dataSHA256: row["data_sha256"], configJSON: row["config_json"], outDir: row["out_dir"], status: row["status"],
                          createdAt: row["created_at"], updatedAt: row["updated_at"])
    }

    /// Values as `canonicalJSON` wrote them, non-finite ones (`"nan"`, `"inf"`, `"-inf"`) included:
    /// a step whose loss went NaN keeps its other metrics and shows the NaN.
    static func decodeMetrics(_ json: String) -> [String: Double] {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return (try? decoder.decode([String: Double].self, from: Data(json.utf8))) ?? [:]
    }

    static func canonicalJSON(_ values: [String: Double]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(values), as: UTF8.self)
    }
}
