import ArgumentParser
import AssayServer
import Foundation
import VLMRuntime

/// `assay serve`: a local checkpoint behind the OpenAI chat-completions API.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a local checkpoint over the OpenAI chat-completions API (continuous batching, streaming, /metrics).",
        discussion: """
            Binds 127.0.0.1 unless --host says otherwise; any other address needs --api-key-env. SIGTERM or \
            Ctrl-C stops accepting, finishes the requests already taken, and exits.
            """)

    @Option(help: "Checkpoint folder (config.json, *.safetensors, tokenizer.json, …) or a .gguf file.") var modelPath: String
    @Option(help: "The model name clients send (default: the folder or file name).") var servedModelName: String?
    @Option(help: "Address to bind. Anything but loopback requires --api-key-env.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 8000
    @Option(help: "Environment variable holding the API key clients must send as 'Authorization: Bearer KEY'.") var apiKeyEnv: String?
    @Option(help: "Most sequences decoded together (a request with n choices takes n).") var maxBatch = 8
    @Option(help: "Most requests waiting for a place in the batch; more are answered 429 with Retry-After.") var maxQueue = 64
    @Option(help: "Largest max_tokens a request may ask for (also the default when it asks for none).") var maxTokensLimit = 4096
    @Option(help: "Longest prompt accepted, in tokens (default: the model's context).") var maxPromptTokens: Int?
    @Option(help: "Largest request body in MiB.") var maxBodyMb = 32
    @Option(help: "Most choices (n) per request.") var maxChoices = 16
    @Option(help: "Folder from which requests may name local image files (absolute paths or file:// URLs); without it only data: URLs are read.")
    var allowDir: String?
    @Option(help: "Seconds a client has to send a whole request.") var requestTimeout = 30
    @OptionGroup var load: RuntimeLoadOptions

    func validate() throws {
        guard maxBatch >= 1 else { throw ValidationError("--max-batch must be at least 1") }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must be 0 or more") }
        guard maxTokensLimit >= 1 else { throw ValidationError("--max-tokens-limit must be at least 1") }
        guard maxBodyMb >= 1 else { throw ValidationError("--max-body-mb must be at least 1") }
        guard (1...1024).contains(maxChoices) else { throw ValidationError("--max-choices must be between 1 and 1024") }
        guard requestTimeout >= 1 else { throw ValidationError("--request-timeout must be at least 1 second") }
        if let allowDir {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: allowDir, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("--allow-dir \(allowDir) is not a folder")
            }
        }
    }

    func run() async throws {
        var apiKey: String?
        if let apiKeyEnv {
            guard let value = ProcessInfo.processInfo.environment[apiKeyEnv], !value.isEmpty else {
                throw ValidationError("--api-key-env \(apiKeyEnv): the variable is not set or empty")
            }
            apiKey = value
        }
        if !InferenceServer.isLoopback(host) && apiKey == nil {
            throw InferenceServer.StartError.exposedWithoutKey(host: host)
        }
        let model = try VLMModel.load(path: modelPath, options: load.loadOptions())
        var name = servedModelName ?? URL(fileURLWithPath: modelPath).lastPathComponent
        if servedModelName == nil, name.hasSuffix(".gguf") { name = String(name.dropLast(5)) }
        let scheduler = GenerationScheduler(model: model, maxBatch: maxBatch, maxQueue: maxQueue, maxTokensLimit: maxTokensLimit,
                                            maxPromptTokens: maxPromptTokens)
        var configuration = InferenceServer.Configuration(modelNames: [name])
        configuration.host = host
        configuration.port = port
        configuration.apiKey = apiKey
        configuration.request = .init(maxTokens: maxTokensLimit, maxChoices: maxChoices, allowDirectory: allowDir)
        configuration.maxBodyBytes = maxBodyMb << 20
        configuration.requestTimeout = .seconds(Int64(requestTimeout))

        // Signals are taken from their default action first, then delivered to a dispatch source.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let (stops, stop) = AsyncStream<Int32>.makeStream()
        let sources = [SIGTERM, SIGINT].map { sig -> DispatchSourceSignal in
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { stop.yield(sig) }
            source.resume()
            return source
        }
        let server = try await InferenceServer.start(configuration, scheduler: scheduler)
        let images = model.acceptsImages ? "images and text" : "text only (image parts are dropped)"
        Self.say("assay serve: \(name) (\(images)) on \(server.baseURL)/v1 — max batch \(maxBatch), queue \(maxQueue)")
        var signals = stops.makeAsyncIterator()
        let received = await signals.next() ?? SIGTERM
        Self.say("assay serve: signal \(received): no new requests; finishing the running ones")
        await server.drain()
        sources.forEach { $0.cancel() }
        Self.say("assay serve: stopped")
    }

    /// A line on stdout, written at once (scripts wait for the first one).
    static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
