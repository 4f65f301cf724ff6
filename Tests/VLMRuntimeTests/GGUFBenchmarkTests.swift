import Foundation
import XCTest
import VLMRuntime

/// Kernel timings, printed, never asserted. Run by hand in an optimised build:
///   ASSAY_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter VLMRuntimeTests.GGUFBenchmarkTests
final class GGUFBenchmarkTests: XCTestCase {
    func testPrintQuantisedMatvecTimings() throws {
        guard ProcessInfo.processInfo.environment["ASSAY_BENCH"] != nil else {
            throw XCTSkip("set ASSAY_BENCH=1 to time the quantised kernels")
        }
        #if DEBUG
        print("note: unoptimised build; timings are not representative")
        #endif
        let file = try GGUFFile(path: GGUFFixtures.modelPath())
        for r in try QuantBenchmark.smolLM2Shapes(file: file) { print(r) }
        for name in ["blk.0.ffn_up.weight", "token_embd.weight"] {
            print(try QuantBenchmark.prefill(file.matrix(named: name), vectors: 256, threads: QuantizedMatrix.defaultThreadCount,
                                             iterations: 5))
        }
        for mode in [ActivationMode.float32, .ggml] {
            for threads in Set([1, QuantizedMatrix.defaultThreadCount]).sorted() {
                print(try QuantBenchmark.decodePass(file: file, mode: mode, threads: threads))
            }
        }
    }
}
