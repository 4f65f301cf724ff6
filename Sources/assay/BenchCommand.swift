import ArgumentParser
import AssayEngine
import AssayServer
import Foundation

/// `assay bench http` (a subcommand of `assay bench`).
struct BenchHTTPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "Requests per second, CPU per 1,000 requests and peak memory of the OpenAI-compatible backend against a zero-latency server.")

    @Option(help: "Concurrency levels, comma-separated.") var concurrency = "1,16,64"
    @Option(help: "Requests per level.") var requests = 5000
    @Option(name: .customLong("base-url"), help: "Use a running server instead of the in-process zero-latency one.")
    var baseURL: String?
    @Option(name: .customLong("server-threads"), help: "Event-loop threads of the in-process server.") var serverThreads = 1
    @Option(name: .customLong("sweep-items"), help: "Also time whole sweeps (render, HTTP, SQLite per response, scoring) of this many synthetic items; 0 skips.")
    var sweepItems = 3000

    func run() async throws {
        let levels = concurrency.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 > 0 }
        guard !levels.isEmpty, requests > 0 else { throw ValidationError("need concurrency levels and a positive --requests") }
        let (results, memory, server) = try await HTTPBenchmark.run(
            concurrencies: levels, requests: requests, baseURL: baseURL, serverThreads: serverThreads)
        print("server: \(server); \(ProcessInfo.processInfo.activeProcessorCount) cores")
        print("concurrency  requests  failures  seconds   req/s  CPU s/1000 req")
        for r in results {
            print(String(format: "%11d  %8d  %8d  %7.2f  %6.0f  %14.3f", r.concurrency, r.requests, r.failures, r.seconds,
                         r.requestsPerSecond, r.cpuSecondsPerThousand))
        }
        print(String(format: "peak memory: %.1f MiB", memory))
        guard sweepItems > 0 else { return }
        let sweepServer = try await ChatCompletionsServer.start(models: ["bench"], responder: ConstantResponder(text: "A"), threads: serverThreads)
        let sweeps: [SweepBenchmark.Result]
        do {
            sweeps = try await SweepBenchmark.run(baseURL: baseURL ?? sweepServer.baseURL, model: "bench", items: sweepItems,
                                                  concurrencies: levels.filter { $0 > 1 })
        } catch {
            await sweepServer.shutdown()
            throw error
        }
        await sweepServer.shutdown()
        print("whole sweep (one SQLite transaction per response, then scoring):")
        print("concurrency  responses  seconds   resp/s  score")
        for r in sweeps {
            print(String(format: "%11d  %9d  %7.2f  %7.0f  %5.1f", r.concurrency, r.requests, r.seconds, r.requestsPerSecond, r.score))
        }
    }
}
