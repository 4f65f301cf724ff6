import AssayTestSupport
import XCTest
@testable import VLMTraining

/// The scratch kept from one backward pass to the next (`ScratchPool`): size classes, reuse across
/// passes, nothing kept outside a pass, stale buffers freed, and gradients that do not depend on
/// what a reused buffer held before.
final class ScratchPoolTests: XCTestCase {
    func testSizeClassesRoundUpByAnEighthOfAPowerOfTwo() {
        let small = ScratchPool.minimumBytes - 4
        XCTAssertEqual(ScratchPool.sizeClass(small), small)
        XCTAssertEqual(ScratchPool.sizeClass(1 << 20), 1 << 20)
        XCTAssertEqual(ScratchPool.sizeClass((1 << 20) + 1), (1 << 20) + (1 << 17))
        XCTAssertEqual(ScratchPool.sizeClass(403_000_000), 402_653_184 + (1 << 25))
        for size in stride(from: ScratchPool.minimumBytes, to: 1 << 30, by: 7_654_321) {
            let c = ScratchPool.sizeClass(size)
            XCTAssertGreaterThanOrEqual(c, size)
            XCTAssertLessThanOrEqual(Double(c), Double(size) * 1.125 + 1)
        }
    }

    func testAPassTakesBackTheBuffersOfTheLastOne() throws {
        guard ScratchPool.enabled else { throw XCTSkip("ASSAY_TRAIN_SCRATCH_POOL=0") }
        let pool = ScratchPool.shared
        pool.drain()
        let n = 1 << 20  // 4 MB
        func pass(_ counts: [Int]) -> [UnsafeMutablePointer<Float>] {
            pool.beginPass()
            defer { pool.endPass() }
            let scratch = Scratch()
            return counts.map { scratch.take($0) }
        }
        let first = pass([n, n, 3 * n])
        XCTAssertEqual(pool.keptBytes, 5 * n * 4)
        let second = pass([3 * n, n, n])
        XCTAssertEqual(Set(second), Set(first), "the same classes get the same buffers back")
        // A pass of other shapes frees what it did not take.
        let third = pass([n])
        XCTAssertTrue(Set(first).contains(third[0]))
        XCTAssertEqual(pool.keptBytes, n * 4)
        // Outside a pass nothing is kept or reused.
        do {
            let scratch = Scratch()
            let p = scratch.take(n)
            XCTAssertNotEqual(p, third[0])
        }
        XCTAssertEqual(pool.keptBytes, n * 4)
        pool.drain()
        XCTAssertEqual(pool.keptBytes, 0)
    }

    /// Two backward passes in a row (the second on buffers the first wrote) give the same bits.
    func testRepeatedBackwardPassesGiveTheSameGradients() throws {
        let s = try PolicyGoldenTests.setup()
        let total = Float(s.completions.reduce(0) { $0 + $1.count })
        var grads: [[Float]] = []
        for _ in 0..<2 {
            var stats = PolicyPassStats()
            s.model.parameters.zeroGradients()
            _ = try s.model.backward(prompt: s.prompt, completions: s.completions, temperature: 1, stats: &stats) { lp in
                lp.enumerated().map { i, row in Array(repeating: Float(i % 2 == 0 ? -1 : 1) / total, count: row.count) }
            }
            grads.append(s.model.parameters.parameters.flatMap(\.grad))
        }
        XCTAssertEqual(grads[0].count, grads[1].count)
        XCTAssertTrue(grads[0] == grads[1], "gradients differ between two identical passes")
        if ScratchPool.enabled { XCTAssertGreaterThan(ScratchPool.shared.keptBytes, 0, "the pass kept no scratch") }
    }
}
