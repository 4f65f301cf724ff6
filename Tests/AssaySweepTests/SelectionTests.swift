import AssayBackends
import AssayCore
@testable import AssayEngine
import AssayReport
import AssayServer
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// Answers each (item, sample) from a table, as a model that sampled N answers would.
struct SampleTableResponder: ChatResponder {
    /// Item id → answer per sample index.
    var answers: [String: [String]]

    func reply(to request: OpenAIWire.ChatRequest, context: ChatRequestContext) async -> ChatReply {
        let parts = (context.clientRequestID ?? "").split(separator: "/")
        guard parts.count >= 3, let sample = Int(parts[parts.count - 1]) else { return .failure(status: 400, message: "no request id") }
        let item = parts[1..<(parts.count - 1)].joined(separator: "/")
        guard let row = answers[item], sample < row.count else { return .failure(status: 400, message: "unknown \(item)/\(sample)") }
        return .answer(row[sample])
    }
}

/// A scripted critic server: it reads the critic prompt and answers by its mode.
final class ScriptedCritic: ChatResponder, @unchecked Sendable {
    enum Mode {
        /// Computes the question's arithmetic and boxes the response whose last number is right.
        case knowsTheAnswer
        /// Always `\boxed{1}`: the response shown first.
        case alwaysFirstShown
        /// Answers 500 to everything.
        case broken
        /// Answers, without any choice.
        case undecided
    }

    let mode = Locked(Mode.knowsTheAnswer)
    let calls = Locked(0)
    /// Seconds before each answer (so a selection lasts long enough to be killed).
    let delay = Locked(0.0)

    func reply(to request: OpenAIWire.ChatRequest, context: ChatRequestContext) async -> ChatReply {
        calls.withLock { $0 += 1 }
        let wait = delay.withLock { $0 }
        if wait > 0 { try? await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
        let text = request.messages.last?.text ?? ""
        switch mode.withLock({ $0 }) {
        case .broken: return .failure(status: 500, message: "critic down")
        case .alwaysFirstShown: return .answer("<think>The first one looks fine.</think> \\boxed{1}")
        case .undecided: return .answer("<think>Both are plausible.</think> I cannot tell.")
        case .knowsTheAnswer:
            guard let gold = Self.gold(text) else { return .failure(status: 400, message: "no question in the critic prompt") }
            let scorer = ExactNumberScorer()
            func right(_ label: String, _ next: String) -> Bool {
                guard let start = text.range(of: "[\(label)]\n"), let end = text.range(of: next, range: start.upperBound..<text.endIndex)
                else { return false }
                return scorer.extract(String(text[start.upperBound..<end.lowerBound]), item: Item(id: "")).answer == String(gold)
            }
            let firstRight = right("Response 1", "\n\n[Response 2]"), secondRight = right("Response 2", "\n\nWhich response")
            return .answer("<think>checking both sums</think> \\boxed{\(secondRight && !firstRight ? 2 : 1)}")
        }
    }

    /// "What is a op b?" in the prompt, computed.
    static func gold(_ text: String) -> Int? {
        guard let range = text.range(of: "What is ") else { return nil }
        let words = text[range.upperBound...].split(separator: " ").prefix(3)
        guard words.count == 3, let a = Int(words[0]), let b = Int(words[2].filter(\.isNumber)) else { return nil }
        switch words[1] {
        case "+": return a + b
        case "-": return a - b
        default: return a * b
        }
    }
}

final class SelectionTests: XCTestCase {
    var catalog: SuiteCatalog!

    override func setUpWithError() throws {
        catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
    }

    /// The first `count` arithmetic items.
    func arithmeticItems(_ count: Int) throws -> [Item] {
        Array(try XCTUnwrap(try catalog.suite("arithmetic").generatedItems()).items.prefix(count).map(\.item))
    }

    /// Sweeps `answers` (item id → one answer per sample) into a run of the arithmetic suite.
    func sweep(_ answers: [String: [String]], items: Int, samples: Int, store: Store, run: String = "policy") async throws {
        try await withServer(responder: SampleTableResponder(answers: answers)) { server in
            let summary = try await Sweep(
                configuration: SweepConfiguration(
                    run: run, suites: [SweepSuite(suite: try catalog.suite("arithmetic"), dataset: nil)],
                    params: GenerationParams(temperature: 1, maxTokens: 64, seed: 0), samples: samples, limit: items),
                backend: try backend(server.baseURL), store: store).run()
            XCTAssertEqual(summary.missing, 0)
        }
    }

    func select(_ method: SelectionMethod, ns: [Int], store: Store, critic: (any ModelBackend)? = nil,
                replace: Bool = false, run: String = "policy") async throws -> SelectionSummary {
        try await Selection(configuration: SelectionConfiguration(run: run, method: method, ns: ns, seed: 0, critic: critic,
                                                                  replace: replace),
                            store: store, catalog: catalog).run()
    }

    func score(_ summary: SelectionSummary, n: Int) throws -> Double {
        try XCTUnwrap(summary.points.first { $0.n == n }?.suites.first?.metrics.score)
    }

    // MARK: - Majority and oracle against hand-computed values

    func testMajorityAndOracleMatchHandComputedValues() async throws {
        let items = try arithmeticItems(4)
        let gold = try items.map { try XCTUnwrap(Int($0.answer)) }
        // Four samples per item; which are right is written out by hand.
        let table: [[String]] = [
            ["\(gold[0] + 1)", "= \(gold[0])", "It is \(gold[0]).", "\(gold[0] + 2)"],   // majority right (2 of 4); first wrong
            ["\(gold[1])", "\(gold[1] + 1)", "so \(gold[1] + 1)", "\(gold[1] + 2)"],    // majority wrong; first right
            ["\(gold[2] + 1)", "\(gold[2] + 2)", "no idea", "\(gold[2] + 3)"],          // never right; a 3-way tie
            ["\(gold[3] + 1)", "\(gold[3])", "\(gold[3] + 1)", "\(gold[3])"],           // a 2–2 tie, right or wrong by the rule
        ]
        let store = try Store(path: try Fixtures.temporaryDirectory(for: self).appendingPathComponent("s.sqlite").path)
        try await sweep(Dictionary(uniqueKeysWithValues: zip(items.map(\.id), table)), items: 4, samples: 4, store: store)

        let oracle = try await select(.oracle, ns: [1, 2, 4], store: store)
        XCTAssertEqual(try score(oracle, n: 1), 25)   // only item 1's sample 0 is right
        XCTAssertEqual(try score(oracle, n: 2), 75)   // items 0 and 3 are right at sample 1
        XCTAssertEqual(try score(oracle, n: 4), 75)   // item 2 is never right
        XCTAssertEqual(oracle.points.map(\.run), ["policy@oracle-1", "policy@oracle-2", "policy@oracle-4"])

        let first = try await select(.first, ns: [4], store: store)
        XCTAssertEqual(try score(first, n: 4), 25)

        let majority = try await select(.majority, ns: [4], store: store)
        // Item 3: a tie between gold+1 and gold, broken by the documented seeded hash rule.
        let tied = ["\(gold[3] + 1)", "\(gold[3])"]
        let winner = try XCTUnwrap(tied.min { SHA256.hex("0|arithmetic|\(items[3].id)|\($0)") < SHA256.hex("0|arithmetic|\(items[3].id)|\($1)") })
        let item3Right = winner == "\(gold[3])"
        XCTAssertEqual(try score(majority, n: 4), item3Right ? 50 : 25)  // item 0 right, items 1 and 2 wrong
        let derived = try store.requireRun("policy@majority-4")
        let selections = try store.selections(runID: derived.id)
        XCTAssertEqual(selections.map(\.chosenSample), [1, 1, 0, item3Right ? 1 : 0])
        XCTAssertTrue(selections[3].reason.contains("tie among 2 answers"), selections[3].reason)
        XCTAssertTrue(selections[0].reason.contains("\"votes\""), selections[0].reason)
        // Derived runs read like any run: metrics and a paired comparison against sample 0.
        let comparison = try Comparator.compare(base: "policy@first-4", candidate: "policy@oracle-4", store: store, catalog: catalog)
        XCTAssertEqual(comparison.suites.first?.delta, 50)
        XCTAssertEqual(comparison.suites.first?.nPaired, 4)
    }

    // MARK: - Self-critic with scripted critics

    /// Twelve items, eight samples each; a sample is right when (3 × item + sample) mod 5 is 0.
    func criticFixture() async throws -> (Store, [Item]) {
        let items = try arithmeticItems(12)
        var answers: [String: [String]] = [:]
        for (i, item) in items.enumerated() {
            let gold = try XCTUnwrap(Int(item.answer))
            answers[item.id] = (0..<8).map { k in (3 * i + k) % 5 == 0 ? "The answer is \(gold)." : "The answer is \(gold + 1 + k % 3)." }
        }
        let store = try Store(path: try Fixtures.temporaryDirectory(for: self).appendingPathComponent("c.sqlite").path)
        try await sweep(answers, items: 12, samples: 8, store: store)
        return (store, items)
    }

    func testACriticThatKnowsTheAnswerMakesSelfCriticEqualTheOracle() async throws {
        let (store, _) = try await criticFixture()
        let critic = ScriptedCritic()
        try await withServer(models: ["critic"], responder: critic) { server in
            let criticBackend = try backend(server.baseURL, model: "critic")
            let ns = [1, 2, 3, 4, 8]
            let oracle = try await select(.oracle, ns: ns, store: store)
            let selfCritic = try await select(.selfCritic, ns: ns, store: store, critic: criticBackend)
            for n in ns {
                XCTAssertEqual(try score(selfCritic, n: n), try score(oracle, n: n), "n = \(n)")
            }
            XCTAssertGreaterThan(try score(oracle, n: 8), try score(oracle, n: 1))
            // Cost: n − 1 matches × 2 orders per item, every one asked once.
            XCTAssertEqual(selfCritic.points.map(\.criticCallsPerItem), [0, 2, 4, 6, 14])
            XCTAssertEqual(selfCritic.critic.needed, 12 * (0 + 2 + 4 + 6 + 14))
            XCTAssertEqual(selfCritic.critic.asked + selfCritic.critic.cached, critic.calls.withLock { $0 })
            XCTAssertEqual(selfCritic.critic.failed, 0)
            XCTAssertEqual(selfCritic.critic.unparsed, 0)
            // Nested brackets: the n = 8 tournaments contain the n = 2 and 4 ones; only n = 3 adds
            // its last match (7 + 1 per item, two orders; identical candidate texts share a key).
            XCTAssertLessThanOrEqual(selfCritic.critic.asked, 12 * (7 + 1) * 2)

            // Judgements are stored one per match and order, with the raw output and the verdict.
            let stored = try store.integer("SELECT COUNT(*) FROM critic_judgements")
            XCTAssertEqual(stored, critic.calls.withLock { $0 })
            XCTAssertEqual(try store.integer("SELECT COUNT(*) FROM critic_judgements WHERE verdict IS NULL"), 0)
            XCTAssertEqual(try store.integer("SELECT COUNT(*) FROM critic_judgements WHERE text LIKE '%boxed%'"), stored)

            // A second selection asks the critic nothing new.
            let before = critic.calls.withLock { $0 }
            let again = try await select(.selfCritic, ns: ns, store: store, critic: criticBackend)
            XCTAssertEqual(critic.calls.withLock { $0 }, before)
            XCTAssertEqual(again.critic.asked, 0)
            XCTAssertEqual(again.critic.needed, selfCritic.critic.needed)
            XCTAssertEqual(try score(again, n: 8), try score(selfCritic, n: 8))
        }
    }

    func testACriticThatAlwaysSaysOneReproducesTheFirstCandidate() async throws {
        let (store, items) = try await criticFixture()
        let critic = ScriptedCritic()
        critic.mode.withLock { $0 = .alwaysFirstShown }
        try await withServer(models: ["critic"], responder: critic) { server in
            let summary = try await select(.selfCritic, ns: [1, 2, 4, 8], store: store, critic: try backend(server.baseURL, model: "critic"))
            let first = try await select(.first, ns: [1], store: store)
            for n in [1, 2, 4, 8] {
                XCTAssertEqual(try score(summary, n: n), try score(first, n: 1), "n = \(n)")
                let run = try store.requireRun("policy@self-critic-\(n)")
                XCTAssertEqual(try store.selections(runID: run.id).map(\.chosenSample), Array(repeating: 0, count: items.count))
            }
            // Every match: the two orders contradict each other (position, not content).
            XCTAssertEqual(summary.critic.disagreements, summary.critic.matches)
            XCTAssertEqual(summary.critic.matches, 12 * (1 + 3 + 7))
        }
    }

    func testAFailingCriticGivesErrorStatusesLosesNothingAndResumes() async throws {
        let (store, _) = try await criticFixture()
        let sourceResponses = try store.integer("SELECT COUNT(*) FROM responses")
        let critic = ScriptedCritic()
        try await withServer(models: ["critic"], responder: critic) { server in
            let criticBackend = try backend(server.baseURL, model: "critic", maxAttempts: 2)
            critic.mode.withLock { $0 = .broken }
            let broken = try await select(.selfCritic, ns: [1, 4], store: store, critic: criticBackend)
            XCTAssertEqual(broken.points.first { $0.n == 1 }?.failed, 0)  // no match at n = 1
            XCTAssertEqual(broken.points.first { $0.n == 4 }?.failed, 12)
            XCTAssertEqual(broken.critic.failed, broken.critic.asked)
            let run = try store.requireRun("policy@self-critic-4")
            let responses = try store.responses(runID: run.id, suiteID: "arithmetic")
            XCTAssertEqual(responses.map(\.response.status), Array(repeating: .error, count: 12))
            XCTAssertEqual(responses.first?.response.errorKind, "critic_error")
            XCTAssertEqual(try store.suiteResults(runID: run.id).first?.metrics.missing, 12)
            // The source run is untouched.
            XCTAssertEqual(try store.integer("SELECT COUNT(*) FROM responses WHERE run_id = \(try store.requireRun("policy").id)"),
                           sourceResponses)

            // Back up: the same command asks only what failed, and every item is selected.
            critic.mode.withLock { $0 = .knowsTheAnswer }
            let fixed = try await select(.selfCritic, ns: [1, 4], store: store, critic: criticBackend)
            XCTAssertEqual(fixed.points.map(\.failed), [0, 0])
            XCTAssertEqual(fixed.critic.cached, 0)  // failed calls are never reused
            let oracle = try await select(.oracle, ns: [4], store: store)
            XCTAssertEqual(try score(fixed, n: 4), try score(oracle, n: 4))
        }
    }

    func testAnUndecidedCriticFallsToTheEarlierDrawAndIsCounted() async throws {
        let (store, _) = try await criticFixture()
        let critic = ScriptedCritic()
        critic.mode.withLock { $0 = .undecided }
        try await withServer(models: ["critic"], responder: critic) { server in
            let summary = try await select(.selfCritic, ns: [4], store: store, critic: try backend(server.baseURL, model: "critic"))
            XCTAssertEqual(summary.critic.unparsed, summary.critic.needed)
            let first = try await select(.first, ns: [1], store: store)
            XCTAssertEqual(try score(summary, n: 4), try score(first, n: 1))
            XCTAssertEqual(try store.integer("SELECT COUNT(*) FROM critic_judgements WHERE verdict IS NOT NULL"), 0)
        }
    }

    // MARK: - Bad input

    func testBadRequestsAreClearErrorsBeforeAnythingIsWritten() async throws {
        let (store, _) = try await criticFixture()
        let runs = try store.runs().count
        do {
            _ = try await select(.oracle, ns: [16], store: store)
            XCTFail("16 samples from a run of 8")
        } catch let error as SelectionError {
            XCTAssertEqual(error, .notEnoughSamples(run: "policy", suite: "arithmetic", have: 8, need: 16))
            XCTAssertTrue(error.description.contains("--samples 16"))
        }
        do {
            _ = try await select(.selfCritic, ns: [2], store: store)
            XCTFail("self-critic without a critic")
        } catch let error as SelectionError {
            XCTAssertEqual(error, .criticRequired)
        }
        do {
            _ = try await select(.oracle, ns: [2], store: store, run: "nope")
            XCTFail("unknown run")
        } catch let error as StoreError {
            XCTAssertTrue(error.description.contains("no run named 'nope'"))
        }
        XCTAssertThrowsError(try SelectionConfiguration.parseNs("1,x"))
        XCTAssertThrowsError(try SelectionConfiguration.parseNs("0"))
        XCTAssertEqual(try SelectionConfiguration.parseNs("8, 1,2,2"), [1, 2, 8])
        XCTAssertEqual(try store.runs().count, runs)
        // Another run of the same dataset with more items does not add items to this one's selection.
        try await sweep(Dictionary(uniqueKeysWithValues: try arithmeticItems(20).map { ($0.id, ["1"]) }), items: 20, samples: 1,
                        store: store, run: "wider")
        let oracle = try await select(.oracle, ns: [8], store: store)
        XCTAssertEqual(oracle.points.first?.failed, 0)
        XCTAssertEqual(oracle.points.first?.suites.first?.metrics.n, 12)
        XCTAssertEqual(oracle.points.first?.suites.first?.metrics.missing, 0)  // the wider run's items are not this run's
        // A derived run is not a source.
        _ = try await select(.first, ns: [1], store: store)
        do {
            _ = try await select(.first, ns: [1], store: store, run: "policy@first-1")
            XCTFail("selection of a selection")
        } catch let error as SelectionError {
            XCTAssertEqual(error, .derivedSource(run: "policy@first-1"))
        }
    }

    func testCriticRepliesKeepTextAfterANULAndLoseURLPasswords() async throws {
        let store = try Store(path: try Fixtures.temporaryDirectory(for: self).appendingPathComponent("n.sqlite").path)
        func record(_ key: String, _ response: ModelResponse) -> CriticJudgementRecord {
            CriticJudgementRecord(cacheKey: key, critic: "c", task: CriticPrompt.version, suiteID: "s", itemID: "i",
                                  firstResponseKey: "a", secondResponseKey: "b", response: response, verdict: 2, verdictMethod: "boxed")
        }
        try await store.recordCriticJudgement(record("k", ModelResponse(text: "think\u{0}then \\boxed{2}")))
        XCTAssertEqual(try store.criticJudgement(cacheKey: "k")?.response.text, "think\u{0}then \\boxed{2}")
        try await store.recordCriticJudgement(record("e", .failure(kind: "connection", message: "POST http://user:secret@127.0.0.1:9/v1 failed",
                                                                   attempts: 2)))
        let failed = try XCTUnwrap(try store.criticJudgement(cacheKey: "e"))
        XCTAssertFalse(failed.response.errorMessage?.contains("secret") ?? true, failed.response.errorMessage ?? "")
        XCTAssertNil(failed.verdict)  // a failed call has no verdict, whatever was passed
    }

    // MARK: - Rules and the report

    func testMatchRulesAndTheSeededBracket() {
        XCTAssertEqual(SelectionRules.decide(a: 3, b: 5, aShownFirst: 1, bShownFirst: 2).winner, 3)      // both pick 3
        XCTAssertEqual(SelectionRules.decide(a: 3, b: 5, aShownFirst: 2, bShownFirst: 1).winner, 5)      // both pick 5
        XCTAssertEqual(SelectionRules.decide(a: 5, b: 3, aShownFirst: 1, bShownFirst: 1).rule, "disagree")
        XCTAssertEqual(SelectionRules.decide(a: 5, b: 3, aShownFirst: 1, bShownFirst: 1).winner, 3)      // the earlier draw
        XCTAssertEqual(SelectionRules.decide(a: 5, b: 3, aShownFirst: nil, bShownFirst: 2).winner, 5)    // one order decides
        XCTAssertEqual(SelectionRules.decide(a: 5, b: 3, aShownFirst: nil, bShownFirst: nil).rule, "unparsed")
        let bracket = SelectionRules.bracket(Array(0..<16), seed: 0, suite: "s", item: "i", n: 16)
        XCTAssertEqual(bracket.sorted(), Array(0..<16))
        XCTAssertEqual(bracket, SelectionRules.bracket(Array(0..<16), seed: 0, suite: "s", item: "i", n: 16))
        XCTAssertNotEqual(bracket, SelectionRules.bracket(Array(0..<16), seed: 1, suite: "s", item: "i", n: 16))
        // Nested: the bracket of the first 2ᵏ samples opens every larger one; blocks double.
        for n in [1, 2, 4, 8] {
            XCTAssertEqual(Array(bracket.prefix(n)), SelectionRules.bracket(Array(0..<16), seed: 0, suite: "s", item: "i", n: n))
            XCTAssertEqual(Set(bracket.prefix(n)), Set(0..<n))
        }
        XCTAssertEqual(Array(bracket.prefix(2)), [0, 1])
        // Failed samples are left out; the others keep their places.
        XCTAssertEqual(SelectionRules.bracket([0, 1, 2, 3, 5, 6, 7], seed: 0, suite: "s", item: "i", n: 8),
                       SelectionRules.bracket(Array(0..<8), seed: 0, suite: "s", item: "i", n: 8).filter { $0 != 4 })
        XCTAssertEqual(TournamentRunner.pairs([4, 1, 7]).map { [$0.0, $0.1] }, [[4, 1]])
    }

    func testTheScalingReportDrawsEveryMethodWithIntervals() async throws {
        let (store, _) = try await criticFixture()
        for method in [SelectionMethod.first, .majority, .oracle] {
            _ = try await select(method, ns: [1, 2, 4, 8], store: store)
        }
        let report = try ScalingReport.build(store: store, catalog: catalog, run: "policy", chartFileName: "policy-scaling.svg",
                                             resamples: 500)
        for method in ["first", "majority", "oracle"] {
            XCTAssertTrue(report.markdown.contains(" \(method) | 95% CI |"), method)
            XCTAssertTrue(report.svg.contains(">\(method)</text>"), method)
        }
        XCTAssertTrue(report.markdown.contains("| 8 |"))
        XCTAssertTrue(report.markdown.contains("upper bound"))
        XCTAssertEqual(report.svg.components(separatedBy: "<polyline").count - 1, 3)
        XCTAssertThrowsError(try ScalingReport.build(store: store, catalog: catalog, run: "policy@first-1", chartFileName: "x.svg"))
    }
}
