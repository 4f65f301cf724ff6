import AssayBackends
import AssayCore
import AssayEngine
import AssayServer
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// Sweeps against each way a server can hold a connection open instead of answering, at a low
/// rate and at 100%. URLSession on Linux wedged for good on the accept-then-close shape; the
/// requirement is liveness: the sweep ends within attempts × deadline per item, and every item is
/// stored as an answer or an error status, never as the partial text a broken body carried.
final class FaultShapeTests: XCTestCase {
    static let answer = "The answer is (A)."

    func testEveryStallShapeAtALowRateStillFinishesWithEveryItemStored() async throws {
        for fault in ServerFault.stalls {
            try await sweep(fault: fault, rate: 0.08, items: 40, concurrency: 8, attempts: 4)
        }
    }

    func testEveryStallShapeAtHundredPercentEndsAsErrorStatusesWithinItsBound() async throws {
        for fault in ServerFault.stalls {
            try await sweep(fault: fault, rate: 1.0, items: 6, concurrency: 4, attempts: 2)
        }
    }

    /// One sweep of `items` synthetic questions against a server injecting `fault` at `rate`.
    func sweep(fault: ServerFault, rate: Double, items: Int, concurrency: Int, attempts: Int) async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let (suite, data) = try SyntheticSuite.write(items: items, in: dir)
        let store = try Store(path: dir.appendingPathComponent("\(fault.rawValue)-\(rate).sqlite").path)
        let deadline = 0.8
        let maxBackoff = 0.1
        // A trickled body (about 200 bytes at 50 ms a byte) takes ~10 s: only the deadline ends it.
        let plan = FaultPlan(rates: [fault: rate], seed: 3, closeDelaySeconds: 0.3, trickleIntervalSeconds: 0.05)
        // The limiter may fall to one request in flight, so the bound is the serial one, plus
        // slack for a loaded machine: a wedged sweep never ends, so any finite bound catches it.
        let bound = Double(items * attempts) * (deadline + maxBackoff) + 20
        let run = "\(fault.rawValue)-\(Int(rate * 100))"
        let (summary, stats) = try await withServer(responder: ConstantResponder(text: Self.answer), faults: plan) { server in
            let model = try OpenAICompatibleBackend(.init(
                baseURLs: [server.baseURL], model: "test-model", timeout: deadline, maxAttempts: attempts,
                initialBackoff: 0.02, maxBackoff: maxBackoff, maxConcurrency: concurrency))
            let sweep = Sweep(configuration: SweepConfiguration(run: run, suites: [SweepSuite(suite: suite, dataset: data)],
                                                                concurrency: concurrency),
                              backend: model, store: store)
            let summary = try await Self.within(seconds: bound, what: "sweep under \(run)") { try await sweep.run() }
            return (summary, server.statistics)
        }
        XCTAssertGreaterThan(stats.faults[fault] ?? 0, 0, "\(run): no \(fault.rawValue) injected")
        let responses = try storedResponses(store, run: run, suite: suite.id)
        XCTAssertEqual(responses.count, items, "\(run): every item is stored")
        for record in responses {
            switch record.response.status {
            case .ok:
                XCTAssertEqual(record.response.text, Self.answer, "\(run): stored text is not the server's answer")
            case .error:
                XCTAssertEqual(record.response.text, "", "\(run): an error status carries no text")
                XCTAssertTrue(["timeout", "connection"].contains(record.response.errorKind ?? ""),
                              "\(run): unexpected error kind \(record.response.errorKind ?? "nil"): \(record.response.errorMessage ?? "")")
                XCTAssertEqual(record.response.attempts, attempts, "\(run): a failure comes after every attempt")
            case .truncated:
                XCTFail("\(run): nothing here is cut off by length")
            }
        }
        if rate >= 1 {
            XCTAssertEqual(summary.missing, items, "\(run): at 100% nothing can be answered")
        } else {
            XCTAssertGreaterThan(responses.filter { $0.response.status == .ok }.count, items / 2, "\(run): most items answered")
        }
    }

    /// Runs `body`, failing (and cancelling it) if it has not finished after `seconds`.
    static func within<T: Sendable>(seconds: Double, what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw Wedged(description: "\(what) did not finish within \(Int(seconds)) s")
            }
            return value
        }
    }

    struct Wedged: Error, CustomStringConvertible {
        var description: String
    }
}

/// A `multiple_choice` suite of synthetic questions whose answer is always A, written as a
/// suite manifest and an items JSONL (needs no fixtures).
enum SyntheticSuite {
    static func write(items: Int, in directory: URL, id: String = "synthetic") throws -> (Suite, URL) {
        try SweepBenchmark.syntheticSuite(items: items, in: directory, id: id)
    }
}
