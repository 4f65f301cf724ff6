// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Assay",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "assay", targets: ["assay"]),
        .library(name: "AssayCore", targets: ["AssayCore"]),
        .library(name: "VLMRuntime", targets: ["VLMRuntime"]),
    ],
    // `RemoteBackends` (on by default) builds the OpenAI-compatible HTTP backend on AsyncHTTPClient,
    // which brings swift-nio-ssl (BoringSSL, ~290 C files), NIOHTTP2 and more: half of a first
    // build. `make demo` builds without it (`--disable-default-traits`), since the embedded
    // runtime needs no HTTP client; a sweep against a server then says to build with it.
    traits: [
        .trait(name: "RemoteBackends", description: "The OpenAI-compatible HTTP backend (AsyncHTTPClient)."),
        .default(enabledTraits: ["RemoteBackends"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // HTTP/1.1 server for `assay serve`, the test server and `assay bench http` (NIO alone, no TLS stack).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // HTTP client for the OpenAI-compatible backend: pooled connections per endpoint, connect /
        // read-idle / overall deadlines and cancellation that closes the connection. URLSession on
        // Linux (libcurl under dispatch sources) could spin forever on a closed-without-answer socket.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        // System libraries from Debian (see Makefile `deps`).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),

        // Domain, answer matching and statistics. Depends on nothing of ours.
        .target(name: "AssayCore"),
        // Suite protocol, catalog (Suites/*/suite.yaml), dataset readers, scorer plugins.
        .target(name: "AssaySuites", dependencies: ["AssayCore", "CZlib", .product(name: "Yams", package: "Yams")]),
        // SQLite store (GRDB): runs, items, responses, extractions, scores, metrics.
        .target(name: "AssayStore", dependencies: ["AssayCore", .product(name: "GRDB", package: "GRDB.swift")]),
        // Model backends: replay (imported predictions), OpenAI-compatible HTTP, embedded runtime.
        .target(
            name: "AssayBackends",
            dependencies: [
                "AssayCore", "VLMRuntime",
                .product(name: "AsyncHTTPClient", package: "async-http-client", condition: .when(traits: ["RemoteBackends"])),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        // The OpenAI-compatible HTTP server (chat completions) in front of any responder: the test
        // server with injected faults, `assay bench http`, and `assay serve` (the runtime with continuous batching).
        .target(
            name: "AssayServer",
            dependencies: [
                "AssayCore", "AssayBackends", "VLMRuntime",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        // Import, sweep and scoring passes that tie suites, backends and the store together.
        .target(name: "AssayEngine", dependencies: ["AssayCore", "AssaySuites", "AssayStore", "AssayBackends", "VLMRuntime"]),
        // Training: critic data, rewards (Swift and the exported Python twin), EasyR1 export. The
        // inference path does not import it.
        .target(name: "AssayTraining", dependencies: ["AssayCore", "AssaySuites", "AssayStore", "AssayEngine", "AssayBackends", "VLMTraining", "VLMRuntime"]),
        // The GRPO training core: f32 trainable parameters beside the runtime's frozen inference
        // weights, forward passes that keep (or recompute) what their backward needs, the GRPO
        // objective, AdamW and checkpoint writing. The inference path does not import it.
        .target(name: "VLMTraining", dependencies: ["VLMRuntime", "CBLAS"],
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        // Comparison between runs, Markdown and SVG rendering.
        .target(name: "AssayReport", dependencies: ["AssayCore", "AssaySuites", "AssayStore"]),
        // Embedded inference runtime (Qwen2-VL / Qwen2.5-VL, Llama family) on OpenBLAS.
        // Optimised in debug builds too: unoptimised SIMD kernels run 50–100× slower, which made
        // the model tests (SmolLM2 prefill and greedy decoding) take many minutes.
        .target(name: "VLMRuntime", dependencies: ["CBLAS", "CPNG", "CJPEG"],
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),

        .executableTarget(
            name: "assay",
            dependencies: [
                "AssayCore", "AssaySuites", "AssayStore", "AssayBackends", "AssayEngine", "AssayReport", "VLMRuntime", "AssayServer",
                "AssayTraining", "VLMTraining",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Fixture location (../shared), temporary folders and text snapshots for the tests.
        .target(name: "AssayTestSupport", path: "Tests/AssayTestSupport"),

        .testTarget(name: "AssayCoreTests", dependencies: ["AssayCore", "AssayTestSupport"]),
        // Snapshots/ holds the checked-in prompt snapshots that assertSnapshot compares against.
        .testTarget(name: "AssaySuitesTests", dependencies: ["AssaySuites", "AssayCore", "AssayTestSupport"], exclude: ["Snapshots"]),
        .testTarget(name: "AssayStoreTests", dependencies: ["AssayStore", "AssayCore", "AssayTestSupport"]),
        .testTarget(
            name: "AssayEngineTests",
            dependencies: ["AssayEngine", "AssaySuites", "AssayStore", "AssayCore", "AssayReport", "AssayBackends", "AssayTestSupport"]),
        .testTarget(
            name: "AssaySweepTests",
            dependencies: ["AssayEngine", "AssayServer", "AssayBackends", "AssayStore", "AssaySuites", "AssayCore", "AssayReport", "AssayTestSupport"]),
        .testTarget(
            name: "AssayTrainingTests",
            dependencies: ["AssayTraining", "AssayEngine", "AssayStore", "AssaySuites", "AssayCore", "AssayTestSupport", "VLMTraining"]),
        // The training report's tests import and score evaluation runs as `assay import` and `assay score` do;
        // Snapshots/ holds the checked-in chart snapshots.
        .testTarget(
            name: "AssayReportTests",
            dependencies: ["AssayReport", "AssayEngine", "AssayStore", "AssaySuites", "AssayCore", "AssayTestSupport"],
            exclude: ["Snapshots"]),
        .testTarget(name: "AssayBackendsTests", dependencies: ["AssayBackends", "AssayCore", "AssayTestSupport", "VLMRuntime"]),
        .testTarget(name: "VLMRuntimeTests", dependencies: ["VLMRuntime", "AssayTestSupport"]),
        .testTarget(name: "VLMTrainingTests", dependencies: ["VLMTraining", "VLMRuntime", "AssayTestSupport"]),
        .testTarget(
            name: "AssayServerTests",
            dependencies: ["AssayServer", "AssayBackends", "AssaySuites", "AssayCore", "VLMRuntime", "AssayTestSupport",
                           .product(name: "NIOCore", package: "swift-nio")],
            // Python/ holds the script the openai-client test runs.
            exclude: ["Python"]),
        // AssayStore: the training report's test records a training run the CLI has no command to make yet.
        .testTarget(name: "AssayCLITests", dependencies: ["assay", "AssayStore", "AssayTestSupport"]),
    ]
)
