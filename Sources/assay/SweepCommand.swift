import ArgumentParser
import AssayBackends
import AssayCore
import AssayEngine
import AssayStore
import AssaySuites
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct SweepCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Ask a model every item of one or more suites, store each response as it arrives, then score.",
        discussion: """
            Responses are stored one transaction each, so an interrupted sweep loses only the requests in flight: \
            run the same command again and it asks only for what is missing (and retries stored errors). \
            A request that still fails after its retries is stored as an error, never as an answer, and the \
            item is reported missing; the command then exits non-zero. The API key is read from the environment \
            variable named by --api-key-env and is never written anywhere.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var suiteOptions: SuiteOptions
    @Option(name: .customLong("run"), help: "Run name to create or resume.") var runName: String
    @Option(help: "Suite ids, comma-separated, or 'all'.") var suites: String
    @Option(name: .customLong("data-dir"), help: "Folder of downloaded datasets (default: $ASSAY_DATA_DIR or the user cache).")
    var dataDir: String?
    @Option(help: "Dataset file (TSV or JSONL) for a single suite, instead of the data folder.") var data: String?

    @Option(help: "Backend: 'openai' (OpenAI-compatible servers: vLLM, SGLang, …) or 'local' (the embedded runtime). Default: openai when --base-url is given, else local.")
    var backend: String?
    @Option(name: .customLong("base-url"), help: "OpenAI-compatible server URL(s), comma-separated; requests are spread by load.")
    var baseURL: String?
    @Option(name: .customLong("model-name"), help: "Model name sent to the server (and recorded as the run's model); for local, the name recorded (default: the checkpoint's name).")
    var modelName: String?
    @Option(name: .customLong("model-path"), help: "Local checkpoint (a Hugging Face folder or a GGUF file) for --backend local (default: the pulled embedded default, see `assay models`).")
    var modelPath: String?
    @Option(name: .customLong("batch-size"), help: "Requests per forward batch for --backend local.") var batchSize = 1
    @Option(name: .customLong("min-pixels"), help: "Override the processor's min_pixels (--backend local).") var minPixels: Int?
    @Option(name: .customLong("max-pixels"), help: "Override the processor's max_pixels (--backend local; a CPU budget).") var maxPixels: Int?
    @Option(help: "Worker threads of the embedded runtime (--backend local; default: every core).") var threads: Int?
    @OptionGroup var load: RuntimeLoadOptions
    @Option(help: "Frames sampled uniformly from each video (video suites).") var frames = 8
    @Option(name: .customLong("api-key-env"), help: "Name of the environment variable holding the API key.")
    var apiKeyEnv: String?
    @Option(help: "Most requests in flight per server (the adaptive limit stays at or below it).") var concurrency = 16
    @Option(help: "Only the first N items of each suite.") var limit: Int?
    @Option(help: "Sampling temperature.") var temperature: Double = 0
    @Option(name: .customLong("top-p"), help: "Nucleus sampling.") var topP: Double = 1
    @Option(name: .customLong("max-tokens"), help: "Token limit per response (hitting it is recorded as truncated).")
    var maxTokens = 1024
    @Option(help: "Seed sent with each request (draw k of --samples uses seed + k).") var seed: UInt64?
    @Option(help: "Draws per item.") var samples = 1
    @Option(help: "This machine's part, i/n (1-based); combine the databases with `assay merge`.") var shard: String?
    @Option(help: "Seconds one attempt may take.") var timeout: Double = 600
    @Option(name: .customLong("allow-dir"),
            help: "A folder (besides the dataset's own) that dataset image paths may point into; repeatable.")
    var allowDir: [String] = []
    @Option(name: .customLong("max-attempts"), help: "Attempts per request, the first included.") var maxAttempts = 8
    @Flag(name: .customLong("no-reuse"), help: "Do not copy responses other runs stored under the same cache key.")
    var noReuse = false

    @Option(name: .customLong("judge-base-url"), help: "OpenAI-compatible server of the judge model (for suites with a judge step).")
    var judgeBaseURL: String?
    @Option(name: .customLong("judge-model-name"), help: "Judge model name.") var judgeModelName: String?
    @Option(name: .customLong("judge-api-key-env"), help: "Environment variable holding the judge's API key.")
    var judgeAPIKeyEnv: String?
    @Flag(name: .customLong("no-judge"), help: "Score suites with a judge step by rules only (printed in the report).")
    var noJudge = false

    func run() async throws {
        let kind = backend ?? (baseURL == nil ? "local" : "openai")
        guard kind == "openai" || kind == "local" else {
            throw ValidationError("--backend must be 'openai' or 'local', not '\(kind)'")
        }
        guard frames >= 1 else { throw ValidationError("--frames must be at least 1") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
        guard (1...100_000).contains(concurrency) else { throw ValidationError("--concurrency must be between 1 and 100000") }
        guard timeout.isFinite, timeout > 0, timeout <= 86_400 else {
            throw ValidationError("--timeout must be a number of seconds above 0 and at most 86400, not \(timeout)")
        }
        guard (1...1_000).contains(maxAttempts) else { throw ValidationError("--max-attempts must be between 1 and 1000") }
        guard temperature.isFinite, temperature >= 0, topP.isFinite, topP > 0, topP <= 1 else {
            throw ValidationError("--temperature must be a finite number ≥ 0 and --top-p in (0, 1]")
        }
        guard (1...10_000_000).contains(maxTokens) else {
            throw ValidationError("--max-tokens must be between 1 and 10000000, not \(maxTokens)")
        }
        guard (1...100_000).contains(samples), (1...10_000).contains(frames) else {
            throw ValidationError("--samples must be at most 100000 and --frames at most 10000")
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if noJudge, judgeBaseURL != nil { throw ValidationError("--no-judge and --judge-base-url exclude each other") }
        // Everything that can be checked without the model is checked before it loads (minutes for a 7B).
        let parsedShard = try shard.map { text -> Shard in
            do { return try Shard(parsing: text) } catch { throw ValidationError("\(error)") }
        }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if kind == "openai", minPixels != nil || maxPixels != nil || threads != nil {
            throw ValidationError("--min-pixels, --max-pixels and --threads apply to --backend local only")
        }
        if let minPixels, minPixels < 1 { throw ValidationError("--min-pixels must be positive") }
        if let maxPixels, maxPixels < (minPixels ?? 1) { throw ValidationError("--max-pixels must be at least --min-pixels (and positive)") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        let params = GenerationParams(temperature: temperature, topP: topP, maxTokens: maxTokens, seed: seed)
        // Only an existing database can hold the run; a new one is created when the sweep starts,
        // so a sweep refused here leaves no empty database behind.
        let existing = FileManager.default.fileExists(atPath: database.db) ? try database.openExisting() : nil
        if let existing { try Self.checkResumable(store: existing, run: runName, backend: kind, params: params) }

        let catalog = try suiteOptions.catalog()
        let chosen = try catalog.suites(matching: suites)
        var entries: [SweepSuite] = []
        if let data {
            guard chosen.count == 1 else { throw SweepError.dataForSeveralSuites }
            entries = [SweepSuite(suite: chosen[0], dataset: URL(fileURLWithPath: data))]
        } else {
            let fetch = DataFetch(directory: dataDir.map { URL(fileURLWithPath: $0) } ?? DataFetch.defaultDirectory())
            entries = try chosen.map { suite in
                SweepSuite(suite: suite, dataset: suite.manifest.source?.format == "generated" ? nil : try fetch.localDataset(for: suite))
            }
        }

        let model: any ModelBackend
        var backendNotes: [String: String] = [:]
        var counters: (() -> OpenAICompatibleBackend.RequestCounters)?
        var urls: [String] = []
        if kind == "openai" {
            guard let baseURL else { throw ValidationError("--backend openai needs --base-url") }
            guard let modelName else { throw ValidationError("--backend openai needs --model-name") }
            urls = baseURL.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let http = try OpenAICompatibleBackend(.init(
                baseURLs: urls, model: modelName, apiKey: try Self.readKey(apiKeyEnv), timeout: timeout, maxAttempts: maxAttempts,
                maxConcurrency: concurrency))
            counters = { http.counterSnapshot }
            model = http
        } else {
            let path = try modelPath ?? ModelCache.require(ModelCache.defaultModel).path
            let options = try load.loadOptions(minPixels: minPixels, maxPixels: maxPixels)
            if let existing {
                try Self.checkResumableCheckpoint(store: existing, run: runName) { try EmbeddedBackend.fingerprint(modelPath: path, options: options) }
            }
            note("loading \(path)")
            if let threads { requestRuntimeThreads(threads) }
            let embedded = try EmbeddedBackend(modelPath: path, name: modelName, batchSize: batchSize, options: options)
            if !embedded.model.acceptsImages {
                note("\(embedded.identity.model): a text-only model; image parts of prompts are dropped")
            }
            backendNotes = embedded.runNotes
            // Where the model came from, so `assay select` can load the same model as its own critic.
            backendNotes["model_path"] = URL(fileURLWithPath: path).standardizedFileURL.path
            if let modelName { backendNotes["model_name"] = modelName }
            if let quantize = load.quantize { backendNotes["quantize"] = quantize.lowercased() }
            model = embedded
        }

        var judge: JudgeSetting?
        if noJudge {
            judge = .off
        } else if let judgeBaseURL {
            guard let judgeModelName else { throw ValidationError("--judge-base-url needs --judge-model-name") }
            judge = .backend(try OpenAICompatibleBackend(.init(
                baseURLs: judgeBaseURL.split(separator: ",").map(String.init), model: judgeModelName,
                apiKey: try Self.readKey(judgeAPIKeyEnv), timeout: timeout, maxAttempts: maxAttempts, maxConcurrency: concurrency)))
        }

        // URLs as recorded with the run: any user:password part is dropped.
        let recordedURLs = urls.map { text -> String in
            guard var parts = URLComponents(string: text) else { return "(unparsable URL)" }
            parts.user = nil
            parts.password = nil
            return parts.string ?? "(unparsable URL)"
        }
        var notes = backendNotes.merging(["command": "sweep", "concurrency": String(concurrency)]) { $1 }
        if kind == "openai" { notes["base_urls"] = recordedURLs.joined(separator: ",") }
        if kind == "local" { notes["batch_size"] = String(batchSize) }
        if frames != 8 { notes["frames"] = String(frames) }
        if let apiKeyEnv { notes["api_key_env"] = apiKeyEnv }  // the variable's name, never its value
        if let limit { notes["limit"] = String(limit) }
        if let parsedShard { notes["shard"] = parsedShard.description }
        if let minPixels { notes["min_pixels"] = String(minPixels) }
        if let maxPixels { notes["max_pixels"] = String(maxPixels) }
        if let threads { notes["threads"] = String(threads) }
        if !suiteOptions.suitesDirs.isEmpty { notes[RunRecord.suitesDirsNote] = RunRecord.encodeDirectories(suiteOptions.absoluteDirectories) }
        if noJudge { notes["judge"] = "off" }
        var configuration = SweepConfiguration(
            run: runName, suites: entries,
            params: params,
            // The backend limits each server to --concurrency; the sweep keeps enough requests for all of them.
            // The embedded runtime uses every core for one batch at a time: one batch in flight.
            samples: samples, limit: limit, shard: parsedShard,
            concurrency: kind == "local" ? 1 : concurrency * urls.count,
            reuseAcrossRuns: !noReuse, judge: judge, notes: notes, video: VideoSampling(frames: frames))
        configuration.allowedImageDirectories = try allowDir.map { path in
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--allow-dir \(path) is not a folder")
            }
            return URL(fileURLWithPath: path)
        }

        let bar = ProgressBar()
        let summary = try await Sweep(configuration: configuration, backend: model, store: try database.open(),
                                      progress: { bar.show($0) }).run()
        bar.finish()
        Self.printSummary(summary, counters: counters?())
        if summary.missing > 0 {
            note("\(summary.missing) request\(summary.missing == 1 ? "" : "s") failed after retries and are reported missing; run the same command again to retry them")
            throw ExitCode(2)
        }
    }

    /// An existing run of this name must have been made by the same backend kind with the same
    /// generation parameters; checked before any model loads. (The full backend identity, which
    /// for a local checkpoint needs the loaded model, is checked again by the sweep.)
    static func checkResumable(store: Store, run name: String, backend: String, params: GenerationParams) throws {
        guard let existing = try store.run(named: name) else { return }
        if existing.backend != backend {
            throw SweepError.runMismatch(run: name, what: "backend", existing: existing.backend, requested: backend)
        }
        if existing.generationParams != params.canonicalJSON {
            throw SweepError.runMismatch(run: name, what: "generation parameters", existing: existing.generationParams,
                                         requested: params.canonicalJSON)
        }
    }

    /// A resumed local run must use the same checkpoint and load settings; the fingerprint is
    /// computed without loading the model, so a wrong checkpoint fails in seconds.
    static func checkResumableCheckpoint(store: Store, run name: String, fingerprint: () throws -> String) throws {
        guard let existing = try store.run(named: name),
              let identity = try? JSONDecoder().decode(BackendIdentity.self, from: Data(existing.backendIdentity.utf8)),
              let checkpoint = identity.checkpoint else { return }
        let fingerprint = try fingerprint()
        guard checkpoint != fingerprint else { return }
        throw SweepError.runMismatch(run: name, what: "checkpoint (content fingerprint and load settings)", existing: checkpoint,
                                     requested: fingerprint)
    }

    /// The key's value from the named variable; an error names the variable, never a value.
    static func readKey(_ variable: String?) throws -> String? {
        guard let variable else { return nil }
        guard let value = ProcessInfo.processInfo.environment[variable], !value.isEmpty else {
            throw ValidationError("environment variable \(variable) (from --api-key-env) is not set")
        }
        return value
    }

    static func printSummary(_ summary: SweepSummary, counters: OpenAICompatibleBackend.RequestCounters?) {
        print("run \(summary.run): \(String(format: "%.1f", summary.elapsedSeconds)) s")
        print("suite".padding(toLength: 16, withPad: " ", startingAt: 0)
              + " planned  stored  reused   asked      ok  trunc  errors  retries   score      n  unparsed  missing  judge")
        for s in summary.suites {
            let m = s.metrics
            var judge = "—"
            if let j = s.judge {
                judge = j.mode == .off
                    ? "off (--no-judge)"
                    : "\(String(format: "%.1f", m?.metrics["judge_rate"] ?? 0))% (asked \(j.asked), cached \(j.cached), failed \(j.failed))"
            }
            let cols: [String] = [
                String(s.planned), String(s.alreadyStored), String(s.reused), String(s.asked), String(s.ok), String(s.truncated),
                String(s.errorCount), String(s.retries), m.map { String(format: "%.2f", $0.score) } ?? "—",
                m.map { String($0.n) } ?? "—", m.map { String($0.unparsed) } ?? "—", m.map { String($0.missing) } ?? "—",
            ]
            let widths = [7, 7, 7, 7, 7, 6, 7, 8, 7, 6, 9, 8]
            var line = s.suite.padding(toLength: 16, withPad: " ", startingAt: 0)
            for (col, width) in zip(cols, widths) { line += " " + String(repeating: " ", count: max(0, width - col.count)) + col }
            print(line + "  " + judge)
            if let others = m?.metrics[ScoringPass.inOtherShards], others > 0 {
                print("    \(Int(others)) items in other shards (not missing: combine the shard databases with `assay merge`)")
            }
            if !s.errors.isEmpty {
                print("    errors: " + s.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            }
        }
        if let counters, !counters.retriesByKind.isEmpty {
            print("retries by kind: " + counters.retriesByKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
    }
}

/// The progress line on stderr: redrawn in place on a terminal, a plain line every 10 s otherwise.
final class ProgressBar: @unchecked Sendable {
    private let lock = NSLock()
    private let interactive = isatty(STDERR_FILENO) != 0
    private var lastPlain = Date.distantPast
    private var last: SweepProgress?

    func show(_ progress: SweepProgress) {
        lock.lock()
        defer { lock.unlock() }
        last = progress
        if interactive {
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + progress.line()).utf8))
        } else if Date().timeIntervalSince(lastPlain) >= 10 || progress.finished {
            lastPlain = Date()
            FileHandle.standardError.write(Data((progress.line() + "\n").utf8))
        }
    }

    func finish() {
        lock.lock()
        defer { lock.unlock() }
        if interactive, last != nil { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
