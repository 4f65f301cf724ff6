import GRDB

/// The schema as named, append-only migrations. Never edit a registered migration: add a new one.
enum Schema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()

        migrator.registerMigration("v1-runs-items-responses-scores") { db in
            try db.execute(sql: """
                CREATE TABLE runs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    name TEXT NOT NULL UNIQUE,
                    model TEXT NOT NULL,
                    backend TEXT NOT NULL,
                    backend_identity TEXT NOT NULL,
                    generation_params TEXT NOT NULL,
                    notes TEXT NOT NULL DEFAULT '{}',
                    created_at TEXT NOT NULL
                );

                CREATE TABLE run_suites (
                    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                    suite_id TEXT NOT NULL,
                    suite_version TEXT NOT NULL,
                    prompt_version TEXT NOT NULL,
                    dataset_sha256 TEXT NOT NULL,
                    dataset_path TEXT NOT NULL,
                    item_count INTEGER NOT NULL,
                    PRIMARY KEY (run_id, suite_id)
                );

                CREATE TABLE items (
                    suite_id TEXT NOT NULL,
                    dataset_sha256 TEXT NOT NULL,
                    item_id TEXT NOT NULL,
                    ordinal INTEGER NOT NULL,
                    payload TEXT NOT NULL,
                    PRIMARY KEY (suite_id, dataset_sha256, item_id)
                );

                CREATE TABLE responses (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                    suite_id TEXT NOT NULL,
                    item_id TEXT NOT NULL,
                    sample_index INTEGER NOT NULL DEFAULT 0,
                    cache_key TEXT NOT NULL,
                    text TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('ok', 'truncated', 'error')),
                    error_kind TEXT,
                    error_message TEXT,
                    prompt_tokens INTEGER,
                    completion_tokens INTEGER,
                    latency_seconds REAL,
                    attempts INTEGER NOT NULL DEFAULT 1,
                    imported_extraction TEXT,
                    created_at TEXT NOT NULL,
                    UNIQUE (run_id, suite_id, item_id, sample_index)
                );
                CREATE INDEX responses_by_cache_key ON responses(cache_key);

                CREATE TABLE extractions (
                    response_id INTEGER PRIMARY KEY REFERENCES responses(id) ON DELETE CASCADE,
                    answer TEXT,
                    method TEXT NOT NULL,
                    reason TEXT,
                    scorer_version TEXT NOT NULL
                );

                CREATE TABLE item_scores (
                    response_id INTEGER PRIMARY KEY REFERENCES responses(id) ON DELETE CASCADE,
                    value REAL NOT NULL,
                    correct INTEGER,
                    normalized TEXT,
                    scorer_version TEXT NOT NULL,
                    scored_at TEXT NOT NULL
                );

                CREATE TABLE suite_results (
                    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                    suite_id TEXT NOT NULL,
                    score REAL NOT NULL,
                    n INTEGER NOT NULL,
                    unparsed INTEGER NOT NULL,
                    missing INTEGER NOT NULL,
                    scorer_version TEXT NOT NULL,
                    computed_at TEXT NOT NULL,
                    PRIMARY KEY (run_id, suite_id)
                );

                CREATE TABLE metrics (
                    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                    suite_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    value REAL NOT NULL,
                    PRIMARY KEY (run_id, suite_id, name)
                );
                """)
        }
        // Live sweeps: judge calls cached like responses, and how each run's suites were judged.
        migrator.registerMigration("v2-judgements-and-judging") { db in
            try db.execute(sql: """
                CREATE TABLE judgements (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    cache_key TEXT NOT NULL UNIQUE,
                    judge TEXT NOT NULL,
                    task TEXT NOT NULL,
                    response_cache_key TEXT NOT NULL,
                    text TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('ok', 'truncated', 'error')),
                    error_kind TEXT,
                    error_message TEXT,
                    verdict TEXT,
                    attempts INTEGER NOT NULL DEFAULT 1,
                    prompt_tokens INTEGER,
                    completion_tokens INTEGER,
                    created_at TEXT NOT NULL
                );
                CREATE INDEX judgements_by_response ON judgements(response_cache_key, task, judge);

                CREATE TABLE run_suite_judging (
                    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                    suite_id TEXT NOT NULL,
                    mode TEXT NOT NULL CHECK (mode IN ('judge', 'off')),
                    judge TEXT,
                    task TEXT NOT NULL,
                    updated_at TEXT NOT NULL,
                    PRIMARY KEY (run_id, suite_id)
                );
                """)
        }
        // Test-time scaling: critic calls of self-critic tournaments (cached by content, one row
        // per match and order), and which candidate each derived `NAME@METHOD-n` run took and why.
        migrator.registerMigration("v3-critic-judgements-and-selections") { db in
            try db.execute(sql: """
                CREATE TABLE critic_judgements (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    cache_key TEXT NOT NULL UNIQUE,
                    critic TEXT NOT NULL,
                    task TEXT NOT NULL,
                    suite_id TEXT NOT NULL,
                    item_id TEXT NOT NULL,
                    first_response_key TEXT NOT NULL,
                    second_response_key TEXT NOT NULL,
                    text TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('ok', 'truncated', 'error')),
                    error_kind TEXT,
                    error_message TEXT,
                    verdict INTEGER CHECK (verdict IN (1, 2)),
                    verdict_method TEXT,
                    attempts INTEGER NOT NULL DEFAULT 1,
                    prompt_tokens INTEGER,
                    completion_tokens INTEGER,
                    latency_seconds REAL,
                    created_at TEXT NOT NULL
                );
                CREATE INDEX critic_judgements_by_item ON critic_judgements(suite_id, item_id);

                CREATE TABLE selections (
                    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                    suite_id TEXT NOT NULL,
                    item_id TEXT NOT NULL,
                    source_run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                    method TEXT NOT NULL,
                    n INTEGER NOT NULL,
                    chosen_sample INTEGER,
                    reason TEXT NOT NULL,
                    critic_calls INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (run_id, suite_id, item_id)
                );
                """)
        }
        migrator.registerMigration("v4-training") { db in
            try db.execute(sql: """
                CREATE TABLE training_runs (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    name TEXT NOT NULL UNIQUE,
                    base_model TEXT NOT NULL,
                    data_path TEXT NOT NULL,
                    data_sha256 TEXT NOT NULL,
                    config_json TEXT NOT NULL,
                    out_dir TEXT NOT NULL,
                    status TEXT NOT NULL CHECK (status IN ('running', 'stopped', 'finished', 'failed')),
                    created_at TEXT NOT NULL,
                    updated_at TEXT NOT NULL
                );

                CREATE TABLE training_steps (
                    training_run_id INTEGER NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
                    step INTEGER NOT NULL,
                    metrics_json TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    PRIMARY KEY (training_run_id, step)
                );

                CREATE TABLE training_rollouts (
                    training_run_id INTEGER NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
                    step INTEGER NOT NULL,
                    prompt_index INTEGER NOT NULL,
                    sample INTEGER NOT NULL,
                    example_id TEXT NOT NULL,
                    text TEXT NOT NULL,
                    tokens INTEGER NOT NULL,
                    reward REAL NOT NULL,
                    components_json TEXT NOT NULL,
                    PRIMARY KEY (training_run_id, step, prompt_index, sample)
                );

                CREATE TABLE training_checkpoints (
                    training_run_id INTEGER NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
                    step INTEGER NOT NULL,
                    path TEXT NOT NULL,
                    parameters_fnv1a64 TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    PRIMARY KEY (training_run_id, step)
                );

                CREATE TABLE training_evaluations (
                    training_run_id INTEGER NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
                    step INTEGER NOT NULL,
                    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                    PRIMARY KEY (training_run_id, step, run_id)
                );
                """)
        }
        return migrator
    }
}
