import AssayBackends
import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// Problems that stop `assay select` before it asks or writes anything.
public enum SelectionError: Error, CustomStringConvertible, Equatable {
    case badN(String)
    case notEnoughSamples(run: String, suite: String, have: Int, need: Int)
    case notScored(run: String, suite: String)
    case noAnswerExtraction(suite: String)
    case criticRequired
    case derivedSource(run: String)
    case noSuites(run: String)

    public var description: String {
        switch self {
        case .badN(let text): return "--n '\(text)' must be a comma-separated list of positive integers (for example 1,2,4,8)"
        case .notEnoughSamples(let run, let suite, let have, let need):
            return "run '\(run)' has \(have) sample\(have == 1 ? "" : "s") per item on suite '\(suite)'; --n \(need) needs \(need). "
                + "Sweep it with --samples \(need) (the same command resumes and asks only for the missing draws)"
        case .notScored(let run, let suite):
            return "run '\(run)' has responses for '\(suite)' that are not scored; run `assay score --run \(run)` first"
        case .noAnswerExtraction(let suite):
            return "suite '\(suite)' has no answer extraction to vote on (a judge grades its responses as correct or not): "
                + "majority voting cannot be applied; use oracle or self-critic"
        case .criticRequired:
            return "self-critic needs a critic: --critic-model-path, or --critic-base-url with --critic-model-name "
                + "(by default the model of the run, when its checkpoint path is recorded)"
        case .derivedSource(let run):
            return "run '\(run)' is itself a selection; select from the run that holds the samples"
        case .noSuites(let run): return "run '\(run)' has none of the asked suites"
        }
    }
}

/// Everything `assay select` is asked to do.
public struct SelectionConfiguration: Sendable {
    /// The run holding N samples per item.
    public var run: String
    public var method: SelectionMethod
    /// Prefix sizes: for each n, a derived run `RUN@METHOD-n` selects among samples 0..<n.
    public var ns: [Int]
    public var seed: UInt64
    /// Only these suites of the run (all when `nil`).
    public var suites: Set<String>?
    /// The critic for self-critic.
    public var critic: (any ModelBackend)?
    /// Greedy by default, so a verdict is reproducible.
    public var criticParams: GenerationParams
    /// Critic requests in flight at most (HTTP critics; the embedded runtime batches instead).
    public var concurrency: Int
    /// Rebuild a derived run that an earlier, different selection (critic, seed) made.
    public var replace: Bool
    /// Where the datasets of suites with images are read (`--data-dir`), for the critic's prompts.
    public var dataDirectory: URL?

    public init(run: String, method: SelectionMethod, ns: [Int], seed: UInt64 = 0, suites: Set<String>? = nil,
                critic: (any ModelBackend)? = nil, criticParams: GenerationParams = Selection.defaultCriticParams,
                concurrency: Int = 16, replace: Bool = false, dataDirectory: URL? = nil) {
        self.run = run
        self.method = method
        self.ns = ns
        self.seed = seed
        self.suites = suites
        self.critic = critic
        self.criticParams = criticParams
        self.concurrency = concurrency
        self.replace = replace
        self.dataDirectory = dataDirectory
    }

    /// `1,2,4,8` → `[1, 2, 4, 8]` (sorted, unique).
    public static func parseNs(_ text: String) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 1 << 20 }) else { throw SelectionError.badN(text) }
        return Array(Set(values.compactMap { $0 })).sorted()
    }
}

/// What `assay select` did.
public struct SelectionSummary: Sendable {
    /// One derived run.
    public struct Point: Sendable {
        public var n: Int
        public var run: String
        public var suites: [ScoringPass.SuiteOutcome]
        /// Items whose selection failed (no usable candidate, or a critic call failed).
        public var failed: Int
        /// Critic calls the tournaments of this n needed, per item (matches × 2 orders).
        public var criticCallsPerItem: Double
    }

    /// Critic calls over the whole selection.
    public struct CriticCounts: Sendable, Hashable {
        public var needed = 0
        public var asked = 0
        public var cached = 0
        public var failed = 0
        /// Usable replies that named neither response.
        public var unparsed = 0
        /// Matches whose two orders picked different candidates.
        public var disagreements = 0
        public var matches = 0
    }

    public var source: String
    public var method: SelectionMethod
    public var points: [Point]
    public var critic: CriticCounts
}

/// `assay select`: derives, for each n, a run whose response to each item is the candidate a
/// method picks among the first n samples of a run, records which one and why, and scores it, so
/// `metrics`, `compare` and `report` read Best-of-N like any run.
public struct Selection: Sendable {
    public let configuration: SelectionConfiguration
    public let store: Store
    public let catalog: SuiteCatalog
    public let progress: (@Sendable (String) -> Void)?

    public static let defaultCriticParams = GenerationParams(temperature: 0, topP: 1, maxTokens: 1024, seed: 0)

    public init(configuration: SelectionConfiguration, store: Store, catalog: SuiteCatalog,
                progress: (@Sendable (String) -> Void)? = nil) {
        self.configuration = configuration
        self.store = store
        self.catalog = catalog
        self.progress = progress
    }

    /// The derived run's name: `RUN@METHOD-n`.
    public static func derivedName(run: String, method: SelectionMethod, n: Int) -> String { "\(run)@\(method.rawValue)-\(n)" }

    /// A suite of the source run as selection reads it.
    struct SourceSuite {
        var suite: Suite
        var registration: SuiteRegistration
        var items: [Item]
        /// Usable candidates by item id.
        var candidates: [String: [SelectionCandidate]]
        /// Every stored response (failed ones too) by item id and sample.
        var responses: [String: [Int: ResponseRecord]]
    }

    public func run() async throws -> SelectionSummary {
        let config = configuration
        let source = try store.requireRun(config.run)
        if let notes = Self.notes(source), notes["selection_of"] != nil { throw SelectionError.derivedSource(run: source.name) }
        if config.method == .selfCritic, config.critic == nil { throw SelectionError.criticRequired }
        guard let largest = config.ns.max() else { throw SelectionError.badN("") }

        // Plan: read and check everything before asking anything.
        let suites = try loadSource(source, need: largest)
        var counts = SelectionSummary.CriticCounts()
        var tournaments: [TournamentKey: Tournament] = [:]
        if config.method == .selfCritic, let critic = config.critic {
            var runner = try TournamentRunner(selection: self, critic: critic, suites: suites)
            tournaments = try await runner.run(ns: config.ns)
            counts = runner.counts
        }

        // Write: one derived run per n, each in one transaction, then score it.
        var points: [SelectionSummary.Point] = []
        for n in config.ns {
            var selected: [SelectedResponse] = []
            var failed = 0
            var calls = 0
            var itemCount = 0
            for entry in suites {
                for item in entry.items {
                    itemCount += 1
                    let candidates = (entry.candidates[item.id] ?? []).filter { $0.sample < n }
                    let (choice, error, itemCalls) = choose(
                        candidates, suite: entry.suite.id, item: item.id, n: n,
                        tournament: tournaments[TournamentKey(suite: entry.suite.id, item: item.id, n: n)])
                    calls += itemCalls
                    let record: NewResponse
                    if let choice, let stored = entry.responses[item.id]?[choice.sample] {
                        record = NewResponse(suiteID: entry.suite.id, itemID: item.id, sampleIndex: 0, cacheKey: stored.cacheKey,
                                             response: stored.response, importedExtraction: stored.importedExtraction)
                    } else {
                        failed += 1
                        let message = error ?? "no usable candidate among the first \(n) samples"
                        record = NewResponse(
                            suiteID: entry.suite.id, itemID: item.id, sampleIndex: 0,
                            cacheKey: "selection-failed:" + SHA256.hex("\(source.id)|\(entry.suite.id)|\(item.id)|\(n)|\(message)"),
                            response: .failure(kind: error == nil ? "no_candidate" : "critic_error", message: message, attempts: 1))
                    }
                    var reason = choice?.reason ?? ["error": .string(error ?? "no usable candidate among the first \(n) samples")]
                    reason["candidates"] = .array(candidates.map { .number(Double($0.sample)) })
                    selected.append(SelectedResponse(response: record, selection: SelectionRecord(
                        suiteID: entry.suite.id, itemID: item.id, method: config.method.rawValue, n: n,
                        chosenSample: choice?.sample, reason: Self.json(.object(reason)), criticCalls: itemCalls)))
                }
            }
            let name = Self.derivedName(run: source.name, method: config.method, n: n)
            try store.writeDerivedRun(derivedRun(name: name, source: source, n: n), source: source,
                                      suites: suites.map(\.registration), selected: selected, replace: config.replace)
            let scored = try ScoringPass.score(run: name, store: store, catalog: catalog, suites: Set(suites.map(\.suite.id)))
            points.append(SelectionSummary.Point(n: n, run: name, suites: scored, failed: failed,
                                                 criticCallsPerItem: itemCount == 0 ? 0 : Double(calls) / Double(itemCount)))
            progress?("\(name): written and scored")
        }
        return SelectionSummary(source: source.name, method: config.method, points: points, critic: counts)
    }

    /// The choice for one item and n, an error when none could be made, and the critic calls spent.
    func choose(_ candidates: [SelectionCandidate], suite: String, item: String, n: Int,
                tournament: Tournament?) -> (SelectionChoice?, String?, Int) {
        switch configuration.method {
        case .first: return (SelectionRules.first(candidates), nil, 0)
        case .oracle: return (SelectionRules.oracle(candidates), nil, 0)
        case .majority: return (SelectionRules.majority(candidates, seed: configuration.seed, suite: suite, item: item), nil, 0)
        case .selfCritic:
            guard let tournament else { return (nil, nil, 0) }
            if let error = tournament.failure { return (nil, error, tournament.calls) }
            guard let winner = tournament.contenders.first else { return (nil, nil, 0) }
            return (SelectionChoice(sample: winner, reason: tournament.reason), nil, tournament.calls)
        }
    }

    /// The derived run's record: the source's model and parameters, an identity that says how
    /// it was selected (so a different critic or seed cannot silently overwrite it), and notes
    /// that name the source, method and n.
    func derivedRun(name: String, source: RunRecord, n: Int) -> NewRun {
        let config = configuration
        var identity: [String: JSONValue] = [
            "kind": .string("selection"), "source": .string(source.backendIdentity), "method": .string(config.method.rawValue),
            "n": .number(Double(n)), "seed": .number(Double(config.seed)),
        ]
        var notes: [String: String] = [
            "command": "select", "selection_of": source.name, "method": config.method.rawValue, "n": String(n),
            "seed": String(config.seed), "samples_in_source": Self.notes(source)?["samples"] ?? "",
        ]
        if config.method == .oracle { notes["upper_bound"] = "pass@n: the oracle sees the gold answer" }
        if config.method == .selfCritic, let critic = config.critic {
            identity["critic"] = .string(critic.identity.canonicalJSON)
            identity["critic_params"] = .string(config.criticParams.canonicalJSON)
            identity["critic_prompt"] = .string(CriticPrompt.version)
            notes["critic"] = critic.identity.model
            notes["critic_is_self"] = critic.identity.canonicalJSON == source.backendIdentity ? "yes" : "no"
        }
        return NewRun(name: name, model: source.model, backend: "selection", backendIdentity: Self.json(.object(identity)),
                      generationParams: source.generationParams, notes: Self.json(.object(notes.mapValues { .string($0) })))
    }

    /// Reads the source run's suites, items, responses and scores, and checks that it has the
    /// samples and scores the selection needs.
    func loadSource(_ source: RunRecord, need: Int) throws -> [SourceSuite] {
        var result: [SourceSuite] = []
        for registration in try store.runSuites(runID: source.id)
        where configuration.suites?.contains(registration.suiteID) ?? true {
            let suite = try catalog.suite(registration.suiteID)
            if configuration.method == .majority, suite.manifest.judge?.task == "grading" {
                throw SelectionError.noAnswerExtraction(suite: suite.id)
            }
            let items = try store.items(suiteID: suite.id, datasetSHA256: registration.datasetSHA256)
            var responses: [String: [Int: ResponseRecord]] = [:]
            var samples = 0
            for response in try store.responses(runID: source.id, suiteID: suite.id) {
                responses[response.itemID, default: [:]][response.sampleIndex] = response
                samples = max(samples, response.sampleIndex + 1)
            }
            guard samples >= need else {
                throw SelectionError.notEnoughSamples(run: source.name, suite: suite.id, have: samples, need: need)
            }
            var scores: [String: [Int: StoredScore]] = [:]
            for score in try store.scores(runID: source.id, suiteID: suite.id) { scores[score.item.id, default: [:]][score.sampleIndex] = score }
            var candidates: [String: [SelectionCandidate]] = [:]
            for (itemID, bySample) in responses {
                for (sample, response) in bySample where response.response.status != .error && sample < need {
                    guard let score = scores[itemID]?[sample] else { throw SelectionError.notScored(run: source.name, suite: suite.id) }
                    candidates[itemID, default: []].append(
                        SelectionCandidate(sample: sample, extraction: score.extraction, score: score.score))
                }
                candidates[itemID]?.sort { $0.sample < $1.sample }
            }
            // The items this run asked (the items table also holds those other runs of the same
            // dataset asked beyond this run's --limit or shard).
            let asked = items.filter { responses[$0.id] != nil }
            result.append(SourceSuite(suite: suite, registration: registration, items: asked, candidates: candidates,
                                      responses: responses))
        }
        guard !result.isEmpty else { throw SelectionError.noSuites(run: source.name) }
        return result
    }

    static func notes(_ run: RunRecord) -> [String: String]? {
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(run.notes.utf8)) else { return nil }
        return object.compactMapValues(\.text)
    }

    static func json(_ value: JSONValue) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
