import ArgumentParser
import AssayBackends
import AssayCore
import AssayEngine
import AssayStore
import Foundation
import VLMRuntime

struct SelectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "select",
        abstract: "Best-of-N: derive runs RUN@METHOD-n whose answer per item is the candidate a method picks among the first n samples.",
        discussion: """
            Methods: first (sample 0), majority (most frequent extracted answer, seeded tie rule), oracle (pass@n: \
            a correct candidate whenever one exists; an upper bound), self-critic (a seeded knockout tournament \
            judged by a critic model, every match asked in both orders). Each derived run is scored like any run, \
            so `assay metrics`, `compare` and `report` read it; `assay report --scaling RUN` draws the curves. \
            Critic calls are stored one by one and cached by content: run the same command again after an \
            interruption and it asks only for what is missing.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var suiteOptions: SuiteOptions
    @Option(name: .customLong("run"), help: "The run holding N samples per item (swept with --samples N).") var runName: String
    @Option(help: "first, majority, oracle or self-critic.") var method: String
    @Option(help: "Prefix sizes, comma-separated (for example 1,2,4,8,16): one derived run each.") var n: String
    @Option(help: "Seed of the tournament brackets and of majority's tie rule.") var seed: UInt64 = 0
    @Option(help: "Only these suites of the run, comma-separated.") var suites: String?
    @Option(name: .customLong("data-dir"), help: "Folder of downloaded datasets, where the critic's prompts read images from if the run's recorded dataset path is gone.")
    var dataDir: String?
    @Flag(help: "Rebuild derived runs that an earlier selection with another critic or seed made.") var replace = false
    @Flag(help: "Print JSON.") var json = false

    @Option(name: .customLong("critic-model-path"), help: "Local checkpoint judging the matches (default: the run's own model when it was a local checkpoint).")
    var criticModelPath: String?
    @Option(name: .customLong("critic-base-url"), help: "OpenAI-compatible server(s) of the critic, comma-separated.") var criticBaseURL: String?
    @Option(name: .customLong("critic-model-name"), help: "Critic model name at the server (or the name recorded for a local critic).")
    var criticModelName: String?
    @Option(name: .customLong("critic-api-key-env"), help: "Environment variable holding the critic server's API key.") var criticAPIKeyEnv: String?
    @Option(name: .customLong("critic-max-tokens"), help: "Token limit of one critic reply (it thinks before it answers).") var criticMaxTokens = 1024
    @Option(name: .customLong("critic-batch-size"), help: "Critic requests per forward batch for a local critic.") var criticBatchSize = 8
    @OptionGroup var load: RuntimeLoadOptions
    @Option(help: "Critic requests in flight per server.") var concurrency = 16
    @Option(help: "Seconds one critic attempt may take.") var timeout: Double = 600
    @Option(name: .customLong("max-attempts"), help: "Attempts per critic request, the first included.") var maxAttempts = 8

    func validate() throws {
        guard SelectionMethod(rawValue: method) != nil else {
            throw ValidationError("--method must be one of \(SelectionMethod.allCases.map(\.rawValue).joined(separator: ", ")), not '\(method)'")
        }
        _ = try SelectionConfiguration.parseNs(n)
        guard criticMaxTokens >= 1, criticMaxTokens <= 1 << 20 else { throw ValidationError("--critic-max-tokens must be in 1…1048576") }
        guard criticBatchSize >= 1, concurrency >= 1, concurrency <= 4096 else {
            throw ValidationError("--critic-batch-size and --concurrency must be at least 1 (concurrency at most 4096)")
        }
        guard timeout.isFinite, timeout > 0, maxAttempts >= 1, maxAttempts <= 100 else {
            throw ValidationError("--timeout must be a positive number of seconds and --max-attempts in 1…100")
        }
        if criticModelPath != nil, criticBaseURL != nil {
            throw ValidationError("--critic-model-path and --critic-base-url exclude each other")
        }
        if criticBaseURL != nil, criticModelName == nil { throw ValidationError("--critic-base-url needs --critic-model-name") }
    }

    func run() async throws {
        // invariant: validate() checked both.
        let method = SelectionMethod(rawValue: self.method) ?? .first
        let ns = try SelectionConfiguration.parseNs(n)
        let store = try database.openExisting(readOnly: false)
        let source = try store.requireRun(runName)
        var critic: (any ModelBackend)?
        if method == .selfCritic {
            critic = try makeCritic(source: source)
            if let critic {
                let same = critic.identity.canonicalJSON == source.backendIdentity
                note("critic: \(critic.identity.model)\(same ? " (the run's own model: self-critic)" : " (another model than the run's)")")
            }
        }
        let configuration = SelectionConfiguration(
            run: runName, method: method, ns: ns, seed: seed,
            suites: suites.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) },
            critic: critic,
            criticParams: GenerationParams(temperature: 0, topP: 1, maxTokens: criticMaxTokens, seed: 0),
            concurrency: concurrency, replace: replace, dataDirectory: dataDir.map { URL(fileURLWithPath: $0) })
        let throttle = NoteThrottle()
        let summary = try await Selection(configuration: configuration, store: store, catalog: try suiteOptions.catalog(remembering: [runName], in: store),
                                          progress: { throttle.note($0) }).run()
        if json { return try JSONOutput.print(SummaryJSON(summary)) }
        Self.printSummary(summary)
        if summary.points.contains(where: { $0.failed > 0 }) {
            note("some items have no selection (a failed candidate set or critic call); they are reported missing. Run the same command again to retry the critic calls")
            throw ExitCode(2)
        }
    }

    /// The critic: the flags' backend, or by default the run's own model (a local checkpoint
    /// whose path the sweep recorded, or the same server and model name).
    func makeCritic(source: RunRecord) throws -> any ModelBackend {
        if let criticBaseURL, let criticModelName {
            return try OpenAICompatibleBackend(.init(
                baseURLs: criticBaseURL.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }, model: criticModelName,
                apiKey: try SweepCommand.readKey(criticAPIKeyEnv), timeout: timeout, maxAttempts: maxAttempts, maxConcurrency: concurrency))
        }
        let notes = (try? JSONDecoder().decode([String: String].self, from: Data(source.notes.utf8))) ?? [:]
        if let path = criticModelPath ?? (source.backend == "local" ? notes["model_path"] : nil) {
            note("loading critic \(path)")
            var options = try load.loadOptions()
            if criticModelPath == nil {
                // The run's own load settings, so the critic is the very model that answered.
                if load.quantize == nil, let q = notes["quantize"], let quantization = WeightQuantization(rawValue: q) { options.quantization = quantization }
                if notes["decode_activations"] == "ggml" { options.activations = .ggml }
                if load.precision == nil, notes["prefill_matmuls"] == "bf16" { options.precision = .bfloat16 }
            }
            return try EmbeddedBackend(modelPath: path, name: criticModelName ?? (criticModelPath == nil ? notes["model_name"] : nil),
                                       batchSize: criticBatchSize, options: options)
        }
        if source.backend == "openai", let urls = notes["base_urls"], !urls.isEmpty {
            let model = (try? JSONDecoder().decode(BackendIdentity.self, from: Data(source.backendIdentity.utf8)))?.model ?? source.model
            return try OpenAICompatibleBackend(.init(
                baseURLs: urls.split(separator: ",").map(String.init), model: criticModelName ?? model,
                apiKey: try SweepCommand.readKey(criticAPIKeyEnv ?? notes["api_key_env"]), timeout: timeout, maxAttempts: maxAttempts,
                maxConcurrency: concurrency))
        }
        throw SelectionError.criticRequired
    }

    static func printSummary(_ summary: SelectionSummary) {
        print("\(summary.method.rawValue) over \(summary.source)" + (summary.method == .oracle ? " (pass@n: an upper bound, it sees the gold answer)" : ""))
        for point in summary.points {
            let scores = point.suites.map { "\($0.suite) \(String(format: "%.2f", $0.metrics.score)) (n \($0.metrics.n), unparsed \($0.metrics.unparsed), missing \($0.metrics.missing))" }
            var line = "  n \(String(point.n).padding(toLength: 4, withPad: " ", startingAt: 0)) \(point.run): " + scores.joined(separator: "; ")
            if summary.method == .selfCritic { line += String(format: "; %.1f critic calls per item", point.criticCallsPerItem) }
            if point.failed > 0 { line += "; \(point.failed) failed" }
            print(line)
        }
        if summary.method == .selfCritic {
            let c = summary.critic
            print("  critic calls: \(c.needed) needed, \(c.asked) asked, \(c.cached) from the cache, \(c.failed) failed; "
                  + "\(c.unparsed) unparsed verdicts; \(c.disagreements) of \(c.matches) matches with orders that disagree")
        }
    }

    struct SummaryJSON: Encodable {
        struct Point: Encodable {
            var n: Int
            var run: String
            var suites: [String: Double]
            var failed: Int
            var critic_calls_per_item: Double
        }
        struct Critic: Encodable {
            var needed, asked, cached, failed, unparsed, disagreements, matches: Int
        }
        var source: String
        var method: String
        var points: [Point]
        var critic: Critic

        init(_ s: SelectionSummary) {
            source = s.source
            method = s.method.rawValue
            points = s.points.map { p in
                Point(n: p.n, run: p.run, suites: Dictionary(p.suites.map { ($0.suite, $0.metrics.score) }, uniquingKeysWith: { a, _ in a }),
                      failed: p.failed, critic_calls_per_item: p.criticCallsPerItem)
            }
            let c = s.critic
            critic = Critic(needed: c.needed, asked: c.asked, cached: c.cached, failed: c.failed, unparsed: c.unparsed,
                            disagreements: c.disagreements, matches: c.matches)
        }
    }
}

/// Progress notes on stderr, at most one every two seconds (a round's first line always).
final class NoteThrottle: @unchecked Sendable {
    private let lock = NSLock()
    private var last = Date.distantPast

    func note(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        guard !text.hasPrefix("  ") || now.timeIntervalSince(last) >= 2 else { return }
        last = now
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}
