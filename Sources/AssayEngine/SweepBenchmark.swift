import AssayBackends
import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// The whole sweep path timed end to end against a server that answers at once: rendering,
/// cache keys, HTTP, one SQLite transaction per response, then scoring. Part of
/// `assay bench http`, to show the harness is not what limits a fast inference server.
public enum SweepBenchmark {
    /// The figures for one concurrency level.
    public struct Result: Sendable, Hashable {
        public var concurrency: Int
        public var requests: Int
        public var seconds: Double
        public var score: Double
        public var requestsPerSecond: Double { seconds > 0 ? Double(requests) / seconds : 0 }
    }

    /// A `multiple_choice` suite of `items` synthetic questions (answer A) written into
    /// `directory` as `suite.yaml` and `<id>.jsonl`: the load of `bench http` and of the fault tests.
    public static func syntheticSuite(items: Int, in directory: URL, id: String = "synthetic") throws -> (Suite, URL) {
        let manifestURL = directory.appendingPathComponent("suite.yaml")
        try """
            id: \(id)
            columns:
              required: [index, question, answer]
            prompt:
              version: 1
              template: "{question}\\n[[Options:\\n{options}\\n]]Answer with the option's letter."
            scorer: multiple_choice
            """.write(to: manifestURL, atomically: true, encoding: .utf8)
        let manifest = try SuiteManifest.load(from: manifestURL)
        let suite = try Suite(manifest: manifest, scorer: try ScorerRegistry.scorer(for: manifest))
        var lines = ""
        for i in 0..<items {
            lines += #"{"index": "\#(i)", "question": "Question \#(i): which option is right?", "A": "this one", "B": "that one", "answer": "A"}"# + "\n"
        }
        let data = directory.appendingPathComponent("\(id).jsonl")
        try lines.write(to: data, atomically: true, encoding: .utf8)
        return (suite, data)
    }

    /// Sweeps `items` synthetic multiple-choice questions (a `multiple_choice` suite) into a
    /// temporary database at each concurrency.
    public static func run(baseURL: String, model: String, items: Int, concurrencies: [Int]) async throws -> [Result] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("assay-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (suite, data) = try syntheticSuite(items: items, in: directory, id: "bench")
        var results: [Result] = []
        for concurrency in concurrencies {
            let store = try Store(path: directory.appendingPathComponent("bench-\(concurrency).sqlite").path)
            let backend = try OpenAICompatibleBackend(.init(
                baseURLs: [baseURL], model: model, timeout: 30, maxAttempts: 1, maxConcurrency: concurrency,
                initialConcurrency: concurrency))
            let start = Date()
            let summary = try await Sweep(
                configuration: SweepConfiguration(run: "bench-\(concurrency)", suites: [SweepSuite(suite: suite, dataset: data)],
                                                  concurrency: concurrency),
                backend: backend, store: store).run()
            results.append(Result(concurrency: concurrency, requests: summary.suites.first?.asked ?? 0,
                                  seconds: Date().timeIntervalSince(start), score: summary.suites.first?.metrics?.score ?? 0))
        }
        return results
    }
}
