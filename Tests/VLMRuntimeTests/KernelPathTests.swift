import AssayTestSupport
import Foundation
import XCTest
@testable import VLMRuntime

/// The kernel suites and the model goldens on every kernel path this CPU can run: each narrower
/// path (`ASSAY_KERNELS=avx2`, `portable`) in a child run of this test bundle, since the path is
/// fixed when a process starts.
final class KernelPathTests: XCTestCase {
    static let suites = ["VLMRuntimeTests.KernelTests", "VLMRuntimeTests.GGUFDotTests", "VLMRuntimeTests.GGUFMatmulTests",
                         "VLMRuntimeTests.GGUFDequantTests", "VLMRuntimeTests.BF16KernelTests", "VLMRuntimeTests.ModelGoldenTests",
                         "VLMRuntimeTests.SmolLM2GoldenTests",
                         "VLMTrainingTests.PolicyGoldenTests", "VLMTrainingTests.TrainRowKernelTests", "VLMTrainingTests.SegmentAttentionTests"]

    func testTheEnvironmentForcesANarrowerPath() {
        XCTAssertLessThanOrEqual(KernelPath.active, KernelPath.detected)
        if let requested = KernelPath.requested, requested != .neon, KernelPath.detected != .neon {
            XCTAssertEqual(KernelPath.active, min(requested, KernelPath.detected))
        }
        XCTAssertEqual(Kernels.hasRowKernels, KernelPath.active != .portable)
        XCTAssertEqual(NativeKernels.level != 0, KernelPath.active != .portable)
        XCTAssertTrue(KernelPath.summary.hasPrefix(KernelPath.active.rawValue))
    }

    /// A path from the other architecture's family gives the CPU's best; a narrower one of its
    /// own family is taken; portable runs anywhere.
    func testARequestOutsideTheCPUsFamilyGivesItsBest() {
        XCTAssertEqual(KernelPath.resolve(.neon, detected: .avx512), .avx512)
        XCTAssertEqual(KernelPath.resolve(.avx2, detected: .neon), .neon)
        XCTAssertEqual(KernelPath.resolve(.avx512, detected: .neon), .neon)
        XCTAssertEqual(KernelPath.resolve(.portable, detected: .neon), .portable)
        XCTAssertEqual(KernelPath.resolve(.avx2, detected: .avx512), .avx2)
        XCTAssertEqual(KernelPath.resolve(.avx512, detected: .avx2), .avx2)
        XCTAssertEqual(KernelPath.resolve(.neon, detected: .portable), .portable)
        XCTAssertEqual(KernelPath.resolve(nil, detected: .neon), .neon)
        let expected: [KernelPath: [KernelPath]] = [.portable: [], .neon: [.portable], .avx2: [.portable], .avx512: [.portable, .avx2]]
        XCTAssertEqual(KernelPath.narrower, expected[KernelPath.detected])
    }

    func testKernelSuitesPassOnEveryNarrowerPath() throws {
        guard ProcessInfo.processInfo.environment["ASSAY_KERNELS"] == nil else { throw XCTSkip("a child run: paths are checked by the parent") }
        let paths = KernelPath.narrower
        guard !paths.isEmpty else { throw XCTSkip("this CPU runs only the portable path") }
        let bundle = CommandLine.arguments[0]
        guard FileManager.default.isExecutableFile(atPath: bundle), bundle.hasSuffix(".xctest") || bundle.contains("PackageTests") else {
            throw XCTSkip("not run from the test bundle (\(bundle))")
        }
        for path in paths {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: bundle)
            process.arguments = [Self.suites.joined(separator: ",")]
            var environment = ProcessInfo.processInfo.environment
            environment["ASSAY_KERNELS"] = path.rawValue
            process.environment = environment
            process.currentDirectoryURL = AssayTestSupport.Fixtures.repoRoot
            let out = Pipe()
            process.standardOutput = out
            process.standardError = out
            try process.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            let executed = text.split(separator: "\n").last { $0.contains("Executed") } ?? "no summary"
            print("KernelPathTests: ASSAY_KERNELS=\(path.rawValue): \(executed.trimmingCharacters(in: .whitespaces))")
            XCTAssertEqual(process.terminationStatus, 0, "ASSAY_KERNELS=\(path.rawValue):\n" + text.split(separator: "\n").filter { $0.contains("error") }.prefix(20).joined(separator: "\n"))
            XCTAssertTrue(text.contains("with 0 failures"), "ASSAY_KERNELS=\(path.rawValue): \(executed)")
        }
    }
}
