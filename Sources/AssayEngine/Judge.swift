import AssayBackends
import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// A suite's judge step: the prompt a judge model gets for a response the rules could not read,
/// and how its reply is read. The prompt's text is part of the judge call's cache key, so an
/// edited prompt asks again.
public struct JudgeTask: Sendable {
    public let suite: Suite
    public let spec: SuiteManifest.JudgeSpec

    public init?(suite: Suite) {
        guard let spec = suite.manifest.judge else { return nil }
        self.suite = suite
        self.spec = spec
    }

    /// `<suite>/<task>@<version>`, stored with every judgement.
    public var name: String { "\(suite.id)/\(spec.task)@\(spec.version)" }

    /// Greedy and short: the judge copies or grades, it does not reason at length.
    public static let params = GenerationParams(temperature: 0, topP: 1, maxTokens: 64, seed: 0)

    static let extractionInstructions = """
        You read a model's response to a question and copy out the final answer it gives. Reply with that answer only, \
        exactly as the response states it (a number, an option letter, a word, or a list), with no explanation and no \
        units. If the response gives no final answer, reply NONE.
        """
    static let gradingInstructions = """
        You grade a model's response against a reference answer. Decide whether the final answer in the response \
        means the same as the reference answer. Reply with exactly one word: CORRECT or INCORRECT.
        """

    /// The judge's messages for one response (the response text after `<think>` is stripped).
    public func messages(item: Item, response: String) -> [Message] {
        let (_, visible) = Self.visibleText(response)
        var question = item.question
        if !item.options.isEmpty {
            question += "\nChoices:\n" + item.options.map { "(\($0.label)) \($0.text)" }.joined(separator: "\n")
        }
        switch spec.task {
        case "grading":
            return [.system(Self.gradingInstructions), .user([.text(
                "Question:\n\(question)\n\nReference answer:\n\(item.answers.joined(separator: " | "))\n\nModel response:\n\(visible)\n\nGrade:")])]
        default:
            return [.system(Self.extractionInstructions), .user([.text(
                "Question:\n\(question)\n\nModel response:\n\(visible)\n\nExtracted answer:")])]
        }
    }

    /// The reply read as a verdict: the extracted answer, or `correct`/`incorrect`; `nil` when
    /// the judge found nothing (the response stays unparsed) or the reply is unreadable.
    public func verdict(from reply: String) -> String? {
        let (_, visible) = Self.visibleText(reply)
        var line = visible.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        line = line.trimmingCharacters(in: .whitespacesAndNewlines)
        for prefix in ["Extracted answer:", "Answer:", "Grade:"] where line.lowercased().hasPrefix(prefix.lowercased()) {
            line = String(line.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces)
        }
        switch spec.task {
        case "grading":
            let word = line.uppercased().trimmingCharacters(in: CharacterSet.alphanumerics.inverted)
            if word == "CORRECT" { return "correct" }
            if word == "INCORRECT" { return "incorrect" }
            return nil
        default:
            if line.isEmpty || line.uppercased() == "NONE" { return nil }
            return line
        }
    }

    /// Text outside `<think>…</think>`.
    static func visibleText(_ text: String) -> (Bool, String) {
        guard let close = text.range(of: "</think>") else { return (false, text) }
        return (true, String(text[close.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The extraction and score a verdict stands for.
    public func outcome(verdict: String, item: Item) -> (Extraction, ItemScore) {
        switch spec.task {
        case "grading":
            return (.answer(verdict, method: "judge_grade"), .binary(verdict == "correct"))
        default:
            let extraction = Extraction.answer(verdict, method: "judge")
            return (extraction, suite.score(extraction, item: item))
        }
    }
}

/// Whether a sweep may call a judge: a backend, or the explicit `--no-judge`.
public enum JudgeSetting: Sendable {
    case backend(any ModelBackend)
    /// `--no-judge`: responses the rules cannot read stay unparsed, and the report says so.
    case off
}

/// A sweep that needs a judge it was not given.
public struct JudgeRequiredError: Error, CustomStringConvertible {
    public var suites: [String]
    public var description: String {
        "suite\(suites.count == 1 ? "" : "s") \(suites.joined(separator: ", ")) declare\(suites.count == 1 ? "s" : "") a judge step "
            + "for responses the rules cannot read: pass --judge-base-url and --judge-model-name, or --no-judge to score "
            + "rules only (the report will say so)"
    }
}

/// Runs a run's judge steps: for each response the suite's rules leave unparsed, asks the judge
/// (or reuses a stored judgement with the same key), storing each judgement in its own transaction.
public enum JudgePass {
    /// What the pass did for one suite.
    public struct Outcome: Sendable, Hashable {
        public var suite: String
        public var mode: SuiteJudging.Mode
        /// Responses the rules could not read.
        public var unparsed = 0
        public var asked = 0
        public var cached = 0
        /// Judge calls that failed after their retries (those responses stay unparsed).
        public var failed = 0
    }

    public static func run(runID: Int64, suites: [Suite], store: Store, judge: JudgeSetting, concurrency: Int) async throws -> [Outcome] {
        var outcomes: [Outcome] = []
        for suite in suites {
            guard let task = JudgeTask(suite: suite) else { continue }
            guard case .backend(let backend) = judge else {
                try store.setJudging(runID: runID, SuiteJudging(suiteID: suite.id, mode: .off, judge: nil, task: task.name))
                outcomes.append(Outcome(suite: suite.id, mode: .off))
                continue
            }
            let judgeIdentity = backend.identity.canonicalJSON
            try store.setJudging(runID: runID, SuiteJudging(suiteID: suite.id, mode: .judge, judge: judgeIdentity, task: task.name))
            var outcome = Outcome(suite: suite.id, mode: .judge)
            guard let registration = try store.runSuites(runID: runID).first(where: { $0.suiteID == suite.id }) else {
                outcomes.append(outcome)
                continue
            }
            let items = Dictionary(
                try store.items(suiteID: suite.id, datasetSHA256: registration.datasetSHA256).map { ($0.id, $0) },
                uniquingKeysWith: { a, _ in a })
            var pending: [(key: String, responseKey: String, messages: [Message])] = []
            for response in try store.responses(runID: runID, suiteID: suite.id) where response.response.status != .error {
                guard let item = items[response.itemID] else { continue }
                guard suite.extract(response.response.text, item: item).isUnparsed else { continue }
                outcome.unparsed += 1
                let messages = task.messages(item: item, response: response.response.text)
                let key = CacheKey.make(backend: backend.identity, messages: messages, params: JudgeTask.params,
                                        sampleIndex: 0, promptVersion: task.name)
                if let stored = try store.judgement(cacheKey: key), stored.response.status != .error {
                    outcome.cached += 1
                    continue
                }
                pending.append((key, response.cacheKey, messages))
            }
            try await withThrowingTaskGroup(of: Bool.self) { group in
                var next = 0
                func launch() {
                    let job = pending[next]
                    next += 1
                    group.addTask {
                        let reply = try await backend.generate(GenerationRequest(
                            messages: job.messages, params: JudgeTask.params, suiteID: suite.id, itemID: nil))
                        let verdict = reply.status == .error ? nil : task.verdict(from: reply.text)
                        try store.recordJudgement(JudgementRecord(
                            cacheKey: job.key, judge: judgeIdentity, task: task.name, responseCacheKey: job.responseKey,
                            response: reply, verdict: verdict))
                        return reply.status != .error
                    }
                }
                while next < pending.count, next < max(1, concurrency) { launch() }
                while let ok = try await group.next() {
                    outcome.asked += 1
                    if !ok { outcome.failed += 1 }
                    if next < pending.count { launch() }
                }
            }
            outcomes.append(outcome)
        }
        return outcomes
    }
}

/// Applies stored judgements while scoring: where a suite is judged and the rules left a
/// response unparsed, the judge's verdict (if there is a usable one) decides.
struct JudgeVerdicts {
    let task: JudgeTask
    let judging: SuiteJudging
    let store: Store

    init?(suite: Suite, runID: Int64, store: Store) throws {
        guard let task = JudgeTask(suite: suite), let judging = try store.judging(runID: runID)[suite.id],
              judging.mode == .judge, let judge = judging.judge, !judge.isEmpty else { return nil }
        self.task = task
        self.judging = judging
        self.store = store
    }

    func outcome(for response: ResponseRecord, item: Item) throws -> (Extraction, ItemScore)? {
        guard let judge = judging.judge,
              let record = try store.judgement(responseCacheKey: response.cacheKey, task: task.name, judge: judge),
              let verdict = record.verdict else { return nil }
        return task.outcome(verdict: verdict, item: item)
    }
}
