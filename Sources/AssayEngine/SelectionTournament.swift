import AssayBackends
import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// One item's tournament for one n.
struct TournamentKey: Hashable {
    var suite: String
    var item: String
    var n: Int
}

/// The state of one self-critic tournament: who is still in, the matches played, the critic
/// calls they took, and why it stopped if a critic call failed.
struct Tournament {
    var contenders: [Int]
    var bracket: [Int]
    var matches: [JSONValue] = []
    var failure: String?
    var calls = 0

    var reason: [String: JSONValue] {
        ["rule": .string("knockout tournament, each match judged in both orders"),
         "bracket": .array(bracket.map { .number(Double($0)) }), "matches": .array(matches)]
    }
}

/// What the critic said in one order: a verdict (1, 2 or unparsed), or a failed call.
enum CriticOutcome {
    case verdict(Int?)
    case failed(String)
}

/// Plays every self-critic tournament of a selection, round by round across all items and all n
/// at once, so each round's critic calls go out together (batched for the embedded runtime,
/// concurrent for servers). Each call is looked up in the store by its content key first and
/// stored the moment it arrives, so an interrupted selection resumes where it stopped.
struct TournamentRunner {
    let selection: Selection
    let critic: any ModelBackend
    let suites: [Selection.SourceSuite]
    var counts = SelectionSummary.CriticCounts()
    /// Outcomes known in this selection, by critic-call cache key.
    var outcomes: [String: CriticOutcome] = [:]
    /// Image bytes by content hash, for suites whose items have images.
    var imageBytes: [String: Data] = [:]

    /// One critic call to make.
    struct Job: Sendable {
        var key: String
        var request: GenerationRequest
        var firstKey: String
        var secondKey: String
    }

    init(selection: Selection, critic: any ModelBackend, suites: [Selection.SourceSuite]) throws {
        self.selection = selection
        self.critic = critic
        self.suites = suites
        for entry in suites where entry.items.contains(where: { !$0.images.isEmpty }) {
            for loaded in try RunDataset.loadItems(suite: entry.suite, registration: entry.registration,
                                                   dataDirectory: selection.configuration.dataDirectory) {
                for (ref, data) in zip(loaded.item.images, loaded.imageData) { imageBytes[ref.sha256] = data }
            }
        }
    }

    mutating func run(ns: [Int]) async throws -> [TournamentKey: Tournament] {
        let config = selection.configuration
        var tournaments: [TournamentKey: Tournament] = [:]
        for entry in suites {
            for item in entry.items {
                for n in ns {
                    let samples = (entry.candidates[item.id] ?? []).map(\.sample).filter { $0 < n }
                    let bracket = SelectionRules.bracket(samples, seed: config.seed, suite: entry.suite.id, item: item.id, n: n)
                    tournaments[TournamentKey(suite: entry.suite.id, item: item.id, n: n)] = Tournament(contenders: bracket, bracket: bracket)
                }
            }
        }
        let suitesByID = Dictionary(suites.map { ($0.suite.id, $0) }, uniquingKeysWith: { a, _ in a })
        let itemsByID = Dictionary(suites.flatMap { entry in entry.items.map { ("\(entry.suite.id)\u{1}\($0.id)", $0) } },
                                   uniquingKeysWith: { a, _ in a })
        var round = 0
        while true {
            let active = tournaments.filter { $0.value.failure == nil && $0.value.contenders.count > 1 }.keys
                .sorted { ($0.suite, $0.item, $0.n) < ($1.suite, $1.item, $1.n) }
            if active.isEmpty { break }
            round += 1
            // Ask: every order of every match of this round, each key once.
            var jobs: [Job] = []
            var planned = Set<String>()
            for key in active {
                guard let entry = suitesByID[key.suite], let item = itemsByID["\(key.suite)\u{1}\(key.item)"],
                      let tournament = tournaments[key] else { continue }
                for (a, b) in Self.pairs(tournament.contenders) {
                    for (first, second) in [(a, b), (b, a)] {
                        guard let job = try makeJob(entry: entry, item: item, first: first, second: second) else { continue }
                        if outcomes[job.key] != nil || planned.contains(job.key) { continue }
                        if let stored = try selection.store.criticJudgement(cacheKey: job.key), stored.response.status != .error {
                            // The raw reply is read again with the current rules (as `assay score`
                            // re-extracts answers); the stored verdict is the reading at call time.
                            outcomes[job.key] = .verdict(CriticVerdict.read(stored.response.text).position)
                            counts.cached += 1
                            continue
                        }
                        planned.insert(job.key)
                        jobs.append(job)
                    }
                }
            }
            selection.progress?("self-critic round \(round): \(active.count) tournament\(active.count == 1 ? "" : "s"), "
                                + "\(jobs.count) critic call\(jobs.count == 1 ? "" : "s") to ask")
            try await ask(jobs)

            // Resolve this round's matches.
            for key in active {
                guard let entry = suitesByID[key.suite], let item = itemsByID["\(key.suite)\u{1}\(key.item)"],
                      var tournament = tournaments[key] else { continue }
                var next: [Int] = []
                for (a, b) in Self.pairs(tournament.contenders) {
                    guard let ab = try makeJob(entry: entry, item: item, first: a, second: b),
                          let ba = try makeJob(entry: entry, item: item, first: b, second: a) else { continue }
                    tournament.calls += 2
                    counts.needed += 2
                    var verdicts: [Int?] = []
                    for job in [ab, ba] {
                        switch outcomes[job.key] {
                        case .verdict(let v)?: verdicts.append(v)
                        case .failed(let message)?:
                            tournament.failure = "critic call failed (samples \(a) vs \(b)): \(message)"
                        case nil:
                            tournament.failure = "critic call missing (samples \(a) vs \(b))"
                        }
                    }
                    if tournament.failure != nil { break }
                    counts.unparsed += verdicts.filter { $0 == nil }.count
                    let (winner, rule) = SelectionRules.decide(a: a, b: b, aShownFirst: verdicts[0], bShownFirst: verdicts[1])
                    counts.matches += 1
                    if rule == "disagree" { counts.disagreements += 1 }
                    tournament.matches.append(.object([
                        "round": .number(Double(round)), "a": .number(Double(a)), "b": .number(Double(b)),
                        "a_first_verdict": verdicts[0].map { .number(Double($0)) } ?? .null,
                        "b_first_verdict": verdicts[1].map { .number(Double($0)) } ?? .null,
                        "winner": .number(Double(winner)), "rule": .string(rule),
                    ]))
                    next.append(winner)
                }
                if tournament.failure == nil {
                    if tournament.contenders.count % 2 == 1, let bye = tournament.contenders.last { next.append(bye) }
                    tournament.contenders = next
                }
                tournaments[key] = tournament
            }
        }
        return tournaments
    }

    /// Neighbours in bracket order; the last of an odd number waits.
    static func pairs(_ contenders: [Int]) -> [(Int, Int)] {
        stride(from: 0, to: contenders.count - 1, by: 2).map { (contenders[$0], contenders[$0 + 1]) }
    }

    /// The critic call that shows sample `first` as response 1 and `second` as response 2.
    func makeJob(entry: Selection.SourceSuite, item: Item, first: Int, second: Int) throws -> Job? {
        guard let one = entry.responses[item.id]?[first], let two = entry.responses[item.id]?[second] else { return nil }
        let question = entry.suite.userText(item)
        var parts: [ContentPart] = item.images.map { .image($0) }
        parts.append(.text(CriticPrompt.text(question: question, first: one.response.text, second: two.response.text)))
        let messages = [Message.user(parts)]
        var images: [String: Data] = [:]
        for ref in item.images { images[ref.sha256] = imageBytes[ref.sha256] }
        let params = selection.configuration.criticParams
        let key = CacheKey.make(backend: critic.identity, messages: messages, params: params, sampleIndex: 0,
                                promptVersion: CriticPrompt.version)
        return Job(key: key, request: GenerationRequest(messages: messages, images: images, params: params, sampleIndex: 0,
                                                        suiteID: entry.suite.id, itemID: item.id),
                   firstKey: one.cacheKey, secondKey: two.cacheKey)
    }

    /// Sends the jobs with bounded concurrency (batches for a batching backend), storing each
    /// reply in its own transaction as it lands.
    mutating func ask(_ jobs: [Job]) async throws {
        guard !jobs.isEmpty else { return }
        let critic = self.critic
        let store = selection.store
        let identity = critic.identity.canonicalJSON
        let batchSize = max(1, critic.preferredBatchSize)
        let inFlight = max(1, batchSize > 1 ? 1 : selection.configuration.concurrency)
        let progress = selection.progress
        var done = 0
        try await withThrowingTaskGroup(of: [(String, CriticOutcome)].self) { group in
            var next = 0
            func launch() {
                let batch = Array(jobs[next..<min(next + batchSize, jobs.count)])
                next += batch.count
                group.addTask {
                    let replies = batch.count == 1
                        ? [try await critic.generate(batch[0].request)]
                        : try await critic.generate(batch: batch.map(\.request))
                    var landed: [(String, CriticOutcome)] = []
                    for (job, reply) in zip(batch, replies) {
                        var verdict: CriticVerdict?
                        if reply.status != .error { verdict = CriticVerdict.read(reply.text) }
                        let method: String? = switch verdict {
                        case .prefers(_, let method)?: method
                        case .unparsed?: "unparsed"
                        case nil: nil
                        }
                        try await store.recordCriticJudgement(CriticJudgementRecord(
                            cacheKey: job.key, critic: identity, task: CriticPrompt.version,
                            suiteID: job.request.suiteID ?? "", itemID: job.request.itemID ?? "",
                            firstResponseKey: job.firstKey, secondResponseKey: job.secondKey, response: reply,
                            verdict: verdict?.position, verdictMethod: method))
                        landed.append(reply.status == .error
                            ? (job.key, .failed("\(reply.errorKind ?? "error"): \(reply.errorMessage ?? "")"))
                            : (job.key, .verdict(verdict?.position)))
                    }
                    return landed
                }
            }
            while next < jobs.count, next < inFlight * batchSize { launch() }
            while let landed = try await group.next() {
                for (key, outcome) in landed {
                    outcomes[key] = outcome
                    counts.asked += 1
                    if case .failed = outcome { counts.failed += 1 }
                }
                done += landed.count
                progress?("  critic calls \(done)/\(jobs.count)")
                if next < jobs.count { launch() }
            }
        }
    }
}
