import AssayCore
import Foundation

/// Where a sweep stands, as the progress bar shows it.
public struct SweepProgress: Sendable, Hashable {
    /// Item × sample requests in this sweep's plan.
    public var total: Int
    /// Stored before asking (resumed or reused).
    public var alreadyDone: Int
    /// Sent to the backend this time.
    public var toAsk: Int
    /// Of `toAsk`, answered or failed so far.
    public var asked: Int
    public var errors: Int
    public var truncated: Int
    /// Attempts beyond the first, over the requests finished.
    public var retries: Int
    public var elapsed: TimeInterval
    /// True for the last report.
    public var finished: Bool

    /// Requests finished per second this session.
    public var rate: Double { elapsed > 0 ? Double(asked) / elapsed : 0 }

    /// Seconds left at the current rate; `nil` until something finished.
    public var eta: TimeInterval? {
        guard asked > 0, rate > 0 else { return nil }
        return Double(toAsk - asked) / rate
    }

    /// One line: bar, counts, rate, ETA, errors and retries.
    public func line(barWidth: Int = 24) -> String {
        let done = alreadyDone + asked
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let filled = min(barWidth, Int((fraction * Double(barWidth)).rounded(.down)))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled)
        var parts = ["[\(bar)] \(done)/\(total) \(Int((fraction * 100).rounded(.down)))%"]
        if alreadyDone > 0 { parts.append("\(alreadyDone) stored before") }
        parts.append(String(format: "%.1f req/s", rate))
        parts.append("ETA " + (finished ? "done" : eta.map(Self.clock) ?? "?"))
        parts.append("errors \(errors)")
        if truncated > 0 { parts.append("truncated \(truncated)") }
        parts.append("retries \(retries)")
        return parts.joined(separator: " · ")
    }

    /// `1:02:03` or `2:03`.
    static func clock(_ seconds: TimeInterval) -> String {
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) }
        return String(format: "%d:%02d", s / 60, s % 60)
    }
}

/// Counts finished requests and reports at most five times a second (and always at the end).
final class ProgressTracker: Sendable {
    struct State {
        var progress: SweepProgress
        var lastReport: Date = .distantPast
        /// The finished state was reported: the final line is shown once, however many
        /// callers ask for it (the last response and the sweep's closing report both do).
        var reportedFinished = false
    }

    private let state: Locked<State>
    private let started = Date()
    private let report: (@Sendable (SweepProgress) -> Void)?

    init(total: Int, alreadyDone: Int, toAsk: Int, suites: [String], report: (@Sendable (SweepProgress) -> Void)?) {
        self.report = report
        state = Locked(State(progress: SweepProgress(
            total: total, alreadyDone: alreadyDone, toAsk: toAsk, asked: 0, errors: 0, truncated: 0, retries: 0,
            elapsed: 0, finished: toAsk == 0)))
    }

    func record(suite: Int, response: ModelResponse) {
        state.withLock { state in
            state.progress.asked += 1
            state.progress.retries += max(0, response.attempts - 1)
            if response.status == .error { state.progress.errors += 1 }
            if response.status == .truncated { state.progress.truncated += 1 }
            if state.progress.asked == state.progress.toAsk { state.progress.finished = true }
        }
        emit(force: false)
    }

    func emit(force: Bool) {
        guard let report else { return }
        let now = Date()
        let snapshot: SweepProgress? = state.withLock { state in
            guard force || state.progress.finished || now.timeIntervalSince(state.lastReport) >= 0.2 else { return nil }
            if state.progress.finished {
                if state.reportedFinished { return nil }
                state.reportedFinished = true
            }
            state.lastReport = now
            state.progress.elapsed = now.timeIntervalSince(started)
            return state.progress
        }
        if let snapshot { report(snapshot) }
    }
}
