import AssayBackends
import AssayCore
import AssayStore
import AssaySuites
import Foundation
import VLMRuntime

/// `--shard i/n`: this machine's part of a sweep. Item `k` of a suite (in dataset order, after
/// `--limit`) belongs to shard `k mod n + 1`, so shards are disjoint, cover everything, and stay
/// the same whatever the machines' speed.
public struct Shard: Sendable, Hashable, CustomStringConvertible {
    /// 1-based.
    public var index: Int
    public var count: Int

    public init(index: Int, count: Int) throws {
        guard count >= 1, index >= 1, index <= count else {
            throw SweepError.badShard("\(index)/\(count)")
        }
        self.index = index
        self.count = count
    }

    /// Parses `i/n` (`1/4` … `4/4`).
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]) else { throw SweepError.badShard(text) }
        try self.init(index: i, count: n)
    }

    public func contains(ordinal: Int) -> Bool { ordinal % count == index - 1 }
    public var description: String { "\(index)/\(count)" }
}

/// Problems that stop a sweep before it asks anything.
public enum SweepError: Error, CustomStringConvertible, Equatable {
    case badShard(String)
    case runMismatch(run: String, what: String, existing: String, requested: String)
    case noSuites
    case dataForSeveralSuites
    case noDataset(suite: String)

    public var description: String {
        switch self {
        case .badShard(let text): return "--shard '\(text)' must be i/n with 1 ≤ i ≤ n (for example 1/4)"
        case .runMismatch(let run, let what, let existing, let requested):
            return "run '\(run)' already exists with \(what) \(existing); this sweep has \(requested). Use another --run name, or the run's own settings to resume it"
        case .noSuites: return "no suites to sweep"
        case .dataForSeveralSuites: return "--data FILE names one dataset, so it needs exactly one suite in --suites"
        case .noDataset(let suite): return "suite '\(suite)' has no dataset file (fetch it with `assay data fetch \(suite)` or pass --data)"
        }
    }
}

/// One suite of a sweep with the dataset file it reads (`nil` for a suite whose items Assay
/// generates itself, like `sanity`).
public struct SweepSuite: Sendable {
    public var suite: Suite
    public var dataset: URL?

    public init(suite: Suite, dataset: URL?) {
        self.suite = suite
        self.dataset = dataset
    }

    /// The suite's items with the checksum and path recorded for them.
    func load(images: ImageLoading, video: VideoSampling, allowedDirectories: [URL] = []) throws
        -> (items: [LoadedItem], sha256: String, path: String)
    {
        if let generated = try suite.generatedItems() {
            return (generated.items, generated.sha256, "generated:\(suite.manifest.source?.name ?? suite.id)")
        }
        guard let dataset else { throw SweepError.noDataset(suite: suite.id) }
        let file = try DatasetFile.read(dataset)
        let access = ImageAccess(allowedDirectories: allowedDirectories, decode: Self.decodeImage)
        return (try suite.loadItems(from: file, images: images, video: video, access: access), file.sha256, file.url.path)
    }

    /// Decodes PNG and JPEG with the runtime's decoders (and its pixel cap) so that only real
    /// pictures are sent; other formats a server may accept (GIF, WebP, BMP) keep the header check.
    static let decodeImage: @Sendable (Data, String) throws -> Void = { data, name in
        switch try ImageSignature.check(data) {
        case .png, .jpeg: _ = try ImageDecoder.decode(data: data, name: name)
        case .gif, .webp, .bmp: break
        }
    }
}

/// Everything a sweep is asked to do.
public struct SweepConfiguration: Sendable {
    public var run: String
    public var suites: [SweepSuite]
    public var params: GenerationParams
    /// Draws per item (`--samples`); sample `k` has its own cache key (and seed + k).
    public var samples: Int
    /// The first N items of each suite (`--limit`).
    public var limit: Int?
    public var shard: Shard?
    /// Requests in flight at most (`--concurrency`); HTTP backends adapt below it.
    public var concurrency: Int
    /// Reuse a usable response another run stored for the same item and sample under the same
    /// cache key (default on).
    public var reuseAcrossRuns: Bool
    /// The judge for suites with a judge step: a backend, `.off` (`--no-judge`), or `nil` when
    /// none was given (then a suite with a judge step stops the sweep before it starts).
    public var judge: JudgeSetting?
    /// Recorded with the run (what produced it; never secrets).
    public var notes: [String: String]
    /// Frames sampled per video for video suites (`--frames`).
    public var video: VideoSampling
    /// Folders besides each dataset's own that its `image_path`s may point into (`--allow-dir`).
    public var allowedImageDirectories: [URL] = []

    public init(run: String, suites: [SweepSuite], params: GenerationParams = GenerationParams(), samples: Int = 1,
                limit: Int? = nil, shard: Shard? = nil, concurrency: Int = 16, reuseAcrossRuns: Bool = true,
                judge: JudgeSetting? = nil, notes: [String: String] = [:], video: VideoSampling = VideoSampling()) {
        self.run = run
        self.suites = suites
        self.params = params
        self.samples = samples
        self.limit = limit
        self.shard = shard
        self.concurrency = concurrency
        self.reuseAcrossRuns = reuseAcrossRuns
        self.judge = judge
        self.notes = notes
        self.video = video
    }
}

/// What happened to one suite in a sweep.
public struct SweepSuiteSummary: Sendable, Hashable {
    public var suite: String
    /// Item × sample requests this sweep (shard) is responsible for.
    public var planned = 0
    /// Already in the run with the same cache key (a resumed sweep).
    public var alreadyStored = 0
    /// Copied from another run's response with the same cache key.
    public var reused = 0
    /// Sent to the backend in this sweep.
    public var asked = 0
    public var ok = 0
    public var truncated = 0
    /// Requests that still failed after their retries, by error kind (reported as missing).
    public var errors: [String: Int] = [:]
    /// Attempts beyond the first, over the requests asked.
    public var retries = 0
    public var judge: JudgePass.Outcome?
    public var metrics: SuiteMetrics?

    public var errorCount: Int { errors.values.reduce(0, +) }
}

/// The result of a sweep.
public struct SweepSummary: Sendable {
    public var run: String
    public var suites: [SweepSuiteSummary]
    public var elapsedSeconds: Double
    /// Responses in this sweep's part of the run that are errors at the end: items reported missing.
    public var missing: Int { suites.reduce(0) { $0 + $1.errorCount } }
}

/// `assay sweep`: plans suites × items × samples, skips what the store already holds under the
/// same cache key, asks the backend for the rest with bounded concurrency, stores each response
/// in its own transaction the moment it arrives (so `kill -9` loses at most the requests in
/// flight), then runs the judge steps and scores the run as `assay score` does.
public struct Sweep: Sendable {
    public let configuration: SweepConfiguration
    public let backend: any ModelBackend
    public let store: Store
    public let progress: (@Sendable (SweepProgress) -> Void)?

    public init(configuration: SweepConfiguration, backend: any ModelBackend, store: Store,
                progress: (@Sendable (SweepProgress) -> Void)? = nil) {
        self.configuration = configuration
        self.backend = backend
        self.store = store
        self.progress = progress
    }

    /// One request to make (or to find already made).
    struct Job: Sendable {
        var suiteIndex: Int
        var itemID: String
        var sampleIndex: Int
        var cacheKey: String
        var request: GenerationRequest
    }

    /// A suite's items as this sweep plans them.
    struct PlannedSuite {
        var entry: SweepSuite
        var registration: SuiteRegistration
        var items: [LoadedItem]
    }

    public func run() async throws -> SweepSummary {
        let config = configuration
        guard !config.suites.isEmpty else { throw SweepError.noSuites }
        let judged = config.suites.filter { $0.suite.manifest.judge != nil }.map(\.suite.id)
        if !judged.isEmpty, config.judge == nil {
            throw JudgeRequiredError(suites: judged)
        }
        let started = Date()
        let existed = try store.run(named: config.run) != nil
        let run = try ensureRun()
        do {
            return try await sweep(run: run, started: started)
        } catch {
            // A sweep that failed before storing anything (a bad dataset, a refused image path)
            // must not leave an empty run behind whose settings then block the name.
            if !existed { _ = try? store.deleteRunIfEmpty(runID: run.id) }
            throw error
        }
    }

    func sweep(run: RunRecord, started: Date) async throws -> SweepSummary {
        let config = configuration
        // Plan: read and check every dataset before asking anything.
        var planned: [PlannedSuite] = []
        for entry in config.suites {
            var (items, sha256, path) = try entry.load(images: .keep, video: config.video,
                                                       allowedDirectories: config.allowedImageDirectories)
            if let limit = config.limit { items = Array(items.prefix(max(0, limit))) }
            let registration = SuiteRegistration(
                suiteID: entry.suite.id, suiteVersion: entry.suite.version, promptVersion: entry.suite.promptVersion,
                datasetSHA256: sha256, datasetPath: path, itemCount: items.count)
            // The whole (limited) item list is registered, so `assay merge` can bring the shards'
            // items together; scoring a shard counts the others' items as in other shards.
            try store.registerSuite(runID: run.id, registration, items: items.map(\.item))
            if let shard = config.shard {
                items = items.enumerated().filter { shard.contains(ordinal: $0.offset) }.map(\.element)
            }
            planned.append(PlannedSuite(entry: entry, registration: registration, items: items))
        }

        var summaries = planned.map { SweepSuiteSummary(suite: $0.entry.suite.id) }
        var jobs: [Job] = []
        for (suiteIndex, plan) in planned.enumerated() {
            let suite = plan.entry.suite
            let stored = try store.responseKeys(runID: run.id, suiteID: suite.id)
            let promptVersion = suite.promptVersion + "+" + ImageEncodingPolicy.name
            for loaded in plan.items {
                let item = loaded.item
                let messages = suite.render(item)
                var images: [String: Data] = [:]
                for (ref, data) in zip(item.images, loaded.imageData) { images[ref.sha256] = data }
                for sample in 0..<max(1, config.samples) {
                    summaries[suiteIndex].planned += 1
                    let key = CacheKey.make(backend: backend.identity, messages: messages, params: config.params,
                                            sampleIndex: sample, promptVersion: promptVersion)
                    if let existing = stored[item.id]?[sample], existing.cacheKey == key, existing.status != .error {
                        summaries[suiteIndex].alreadyStored += 1
                        continue
                    }
                    if let reason = loaded.unusable {
                        // Never asked: stored as an error naming the file, line and item (retried
                        // by the next sweep, e.g. after --allow-dir), and the run goes on.
                        let response = ModelResponse.failure(kind: "unusable_item", message: reason, attempts: 0)
                        try await store.recordResponse(runID: run.id, NewResponse(
                            suiteID: suite.id, itemID: item.id, sampleIndex: sample, cacheKey: key, response: response))
                        summaries[suiteIndex].errors["unusable_item", default: 0] += 1
                        continue
                    }
                    if config.reuseAcrossRuns, let cached = try store.reusableResponse(
                        cacheKey: key, suiteID: suite.id, itemID: item.id, sampleIndex: sample) {
                        try await store.recordResponse(runID: run.id, NewResponse(
                            suiteID: suite.id, itemID: item.id, sampleIndex: sample, cacheKey: key, response: cached))
                        summaries[suiteIndex].reused += 1
                        continue
                    }
                    jobs.append(Job(
                        suiteIndex: suiteIndex, itemID: item.id, sampleIndex: sample, cacheKey: key,
                        request: GenerationRequest(messages: messages, images: images, params: config.params,
                                                   sampleIndex: sample, suiteID: suite.id, itemID: item.id)))
                }
            }
        }

        let tracker = ProgressTracker(
            total: summaries.reduce(0) { $0 + $1.planned },
            alreadyDone: summaries.reduce(0) { $0 + $1.alreadyStored + $1.reused },
            toAsk: jobs.count, suites: summaries.map(\.suite), report: progress)
        tracker.emit(force: true)

        // Ask: keep `concurrency` requests in flight, refilling as each one lands.
        let store = self.store
        let backend = self.backend
        let runID = run.id
        let suiteIDs = planned.map(\.entry.suite.id)
        // A backend that batches (the embedded runtime) gets its batch size per task; HTTP backends
        // get one request per task and take concurrency instead.
        let batchSize = max(1, backend.preferredBatchSize)
        try await withThrowingTaskGroup(of: [(Int, ModelResponse)].self) { group in
            var next = 0
            func launch() {
                let batch = Array(jobs[next..<min(next + batchSize, jobs.count)])
                next += batch.count
                group.addTask {
                    let responses = batch.count == 1
                        ? [try await backend.generate(batch[0].request)]
                        : try await backend.generate(batch: batch.map(\.request))
                    var landed: [(Int, ModelResponse)] = []
                    for (job, response) in zip(batch, responses) {
                        // Stored the moment it arrives, in its own transaction.
                        try await store.recordResponse(runID: runID, NewResponse(
                            suiteID: suiteIDs[job.suiteIndex], itemID: job.itemID, sampleIndex: job.sampleIndex,
                            cacheKey: job.cacheKey, response: response))
                        landed.append((job.suiteIndex, response))
                    }
                    return landed
                }
            }
            while next < jobs.count, next < max(1, config.concurrency) * batchSize { launch() }
            while let landed = try await group.next() {
                for (suiteIndex, response) in landed {
                    summaries[suiteIndex].asked += 1
                    summaries[suiteIndex].retries += max(0, response.attempts - 1)
                    switch response.status {
                    case .ok: summaries[suiteIndex].ok += 1
                    case .truncated: summaries[suiteIndex].truncated += 1
                    case .error: summaries[suiteIndex].errors[response.errorKind ?? "error", default: 0] += 1
                    }
                    tracker.record(suite: suiteIndex, response: response)
                }
                if next < jobs.count { launch() }
            }
        }
        tracker.emit(force: true)

        // Judge steps, then scoring as `assay score` does.
        let suites = planned.map(\.entry.suite)
        let judgeOutcomes = try await JudgePass.run(
            runID: run.id, suites: suites, store: store, judge: config.judge ?? .off, concurrency: config.concurrency)
        let scored = try ScoringPass.score(run: config.run, store: store, catalog: try SuiteCatalog(suites: suites),
                                           suites: Set(suites.map(\.id)))
        for index in summaries.indices {
            summaries[index].judge = judgeOutcomes.first { $0.suite == summaries[index].suite }
            summaries[index].metrics = scored.first { $0.suite == summaries[index].suite }?.metrics
        }
        return SweepSummary(run: config.run, suites: summaries, elapsedSeconds: Date().timeIntervalSince(started))
    }

    /// Creates the run, or checks that an existing run of this name was made by the same backend
    /// with the same generation parameters (resuming it must not mix two configurations).
    func ensureRun() throws -> RunRecord {
        let config = configuration
        var notes = config.notes
        notes["samples"] = String(config.samples)
        // Scoring reads `shard` to tell the other shards' items from missing ones.
        if let limit = config.limit { notes["limit"] = String(limit) }
        if let shard = config.shard { notes["shard"] = shard.description }
        notes["image_encoding"] = ImageEncodingPolicy.name
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let existed = try store.run(named: config.run) != nil
        let run = try store.ensureRun(NewRun(
            name: config.run, model: backend.identity.model, backend: backend.identity.kind,
            backendIdentity: backend.identity.canonicalJSON, generationParams: config.params.canonicalJSON,
            notes: String(decoding: try encoder.encode(notes), as: UTF8.self)))
        if run.backendIdentity != backend.identity.canonicalJSON {
            throw SweepError.runMismatch(run: config.run, what: "backend", existing: run.backendIdentity, requested: backend.identity.canonicalJSON)
        }
        if run.generationParams != config.params.canonicalJSON {
            throw SweepError.runMismatch(run: config.run, what: "generation parameters", existing: run.generationParams,
                                         requested: config.params.canonicalJSON)
        }
        if existed {
            // A resumed run records this sweep's settings: a run extended from --limit 20 to 30
            // (or to no limit) must not keep saying limit 20.
            var changes: [String: String?] = notes.mapValues { $0 }
            changes["limit"] = .some(config.limit.map(String.init))
            changes["shard"] = .some(config.shard?.description)
            try store.updateNotes(run: config.run, changes)
            return try store.requireRun(config.run)
        }
        return run
    }
}
