import AssayServer
import AssaySuites
import AssayTestSupport
import Foundation
import NIOCore
import VLMRuntime
import XCTest

/// Loaded models are shared by the tests of one run (loading is the slow part).
enum ServeModels {
    private static let cache = ModelCache()

    private final class ModelCache: @unchecked Sendable {
        let lock = NSLock()
        var models: [String: VLMModel] = [:]
        func get(_ path: String) throws -> VLMModel {
            lock.lock()
            defer { lock.unlock() }
            if let m = models[path] { return m }
            let m = try VLMModel.load(path: path)
            models[path] = m
            return m
        }
    }

    /// The tiny random-weight Qwen2.5-VL checkpoint (sees images), or a skip without ../shared.
    static func tinyQwen() throws -> (path: String, model: VLMModel) {
        let path = try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint").path
        return (path, try cache.get(path))
    }

    /// SmolLM2-135M (a real instruction-tuned model, text only), or a skip when not pulled.
    static func smolLM2() throws -> (path: String, model: VLMModel) {
        let path = try Fixtures.smolLM2Path()
        return (path, try cache.get(path))
    }
}

/// Starts `assay serve`'s server on 127.0.0.1 (a free port), runs the body, always stops it.
func withInferenceServer<T>(
    _ model: VLMModel, name: String = "test-model", maxBatch: Int = 8, maxQueue: Int = 64, maxTokensLimit: Int = 4096,
    configure: (inout InferenceServer.Configuration) -> Void = { _ in },
    _ body: (InferenceServer, RawHTTPClient) async throws -> T
) async throws -> T {
    let scheduler = GenerationScheduler(model: model, maxBatch: maxBatch, maxQueue: maxQueue, maxTokensLimit: maxTokensLimit)
    var configuration = InferenceServer.Configuration(modelNames: [name])
    configuration.port = 0
    configuration.request.maxTokens = maxTokensLimit
    configure(&configuration)
    let server = try await InferenceServer.start(configuration, scheduler: scheduler)
    let client = RawHTTPClient(port: server.port)
    do {
        let result = try await body(server, client)
        await server.drain()
        return result
    } catch {
        await server.drain()
        throw error
    }
}

/// A sanity picture (PNG bytes) and its question.
func sanityPicture(_ index: Int = 0) throws -> (png: Data, question: String) {
    let item = try SanityGenerator.items(count: index + 1, seed: 0)[index]
    return (try XCTUnwrap(item.imageData.first), item.item.question)
}

func dataURL(_ png: Data) -> String { "data:image/png;base64," + png.base64EncodedString() }

/// What `assay generate` answers: the runtime alone, batch of one.
func generateAlone(_ model: VLMModel, _ conversation: [ChatMessage], maxTokens: Int, temperature: Float = 0,
                   seed: UInt64 = 0) throws -> GenerationOutput {
    let out = try model.generate([conversation], parameters: GenerationParameters(
        maxNewTokens: maxTokens, sampling: SamplingParameters(temperature: temperature), seeds: [seed]))
    return try XCTUnwrap(out.first)
}

/// Runs blocking client calls off the cooperative pool.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

/// Polls `condition` every 10 ms for at most `seconds`; returns whether it became true.
func eventually(_ seconds: Double = 20, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(nanoseconds: 10_000_000)
    }
    return condition()
}
