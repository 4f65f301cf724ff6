import AssayBackends
import AssayCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `assay bench http`: the harness's own cost per request, measured against a server that answers
/// at once (`ConstantResponder`), so every second and byte counted is the client's and server's
/// machinery — JSON, HTTP, retries bookkeeping, the adaptive limiter — not a model's.
public enum HTTPBenchmark {
    /// The figures for one concurrency level.
    public struct Result: Sendable, Hashable {
        public var concurrency: Int
        public var requests: Int
        public var failures: Int
        public var seconds: Double
        /// User + system CPU of this process (client and, when in-process, the server).
        public var cpuSeconds: Double
        public var requestsPerSecond: Double { seconds > 0 ? Double(requests) / seconds : 0 }
        public var cpuSecondsPerThousand: Double { requests > 0 ? cpuSeconds / Double(requests) * 1000 : 0 }
    }

    /// Runs `requests` small chat requests at each concurrency against `baseURL`, or against an
    /// in-process zero-latency server when `baseURL` is nil.
    public static func run(concurrencies: [Int], requests: Int, baseURL: String? = nil, serverThreads: Int = 1,
                           model: String = "bench") async throws -> (results: [Result], peakMemoryMiB: Double, server: String) {
        var server: ChatCompletionsServer?
        if baseURL == nil {
            server = try await ChatCompletionsServer.start(models: [model], responder: ConstantResponder(text: "A"), threads: serverThreads)
        }
        let url = baseURL ?? server?.baseURL ?? ""
        var results: [Result] = []
        for concurrency in concurrencies {
            // A fresh backend per level: its adaptive limit starts at the level asked for.
            let backend = try OpenAICompatibleBackend(.init(
                baseURLs: [url], model: model, timeout: 30, maxAttempts: 1, maxConcurrency: concurrency,
                initialConcurrency: concurrency))
            let request = GenerationRequest(
                messages: [.user([.text("Which option is correct? A. yes B. no. Answer with the letter.")])],
                params: GenerationParams(temperature: 0, maxTokens: 8))
            // Warm-up: open the connections before timing.
            _ = try await send(backend: backend, request: request, count: concurrency * 2, concurrency: concurrency)
            let cpuBefore = cpuSeconds()
            let start = Date()
            let failures = try await send(backend: backend, request: request, count: requests, concurrency: concurrency)
            let seconds = Date().timeIntervalSince(start)
            results.append(Result(concurrency: concurrency, requests: requests, failures: failures, seconds: seconds,
                                  cpuSeconds: cpuSeconds() - cpuBefore))
        }
        await server?.shutdown()
        return (results, peakMemoryMiB(), baseURL == nil ? "in-process zero-latency server (\(serverThreads) thread)" : url)
    }

    static func send(backend: OpenAICompatibleBackend, request: GenerationRequest, count: Int, concurrency: Int) async throws -> Int {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            var launched = 0
            var failures = 0
            while launched < min(count, concurrency) {
                group.addTask { try await backend.generate(request).status == .error }
                launched += 1
            }
            while let failed = try await group.next() {
                if failed { failures += 1 }
                if launched < count {
                    group.addTask { try await backend.generate(request).status == .error }
                    launched += 1
                }
            }
            return failures
        }
    }

    #if os(Linux)
    static let selfUsage = __rusage_who_t(RUSAGE_SELF.rawValue)
    #else
    static let selfUsage = RUSAGE_SELF
    #endif

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(selfUsage, &usage)
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// Peak resident memory of this process (`ru_maxrss`).
    static func peakMemoryMiB() -> Double {
        var usage = rusage()
        getrusage(selfUsage, &usage)
        #if os(Linux)
        return Double(usage.ru_maxrss) / 1024  // KiB on Linux
        #else
        return Double(usage.ru_maxrss) / 1_048_576  // bytes on macOS
        #endif
    }
}
