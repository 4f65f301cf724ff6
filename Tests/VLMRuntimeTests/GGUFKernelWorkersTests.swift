import Dispatch
import Foundation
import XCTest
@testable import VLMRuntime

/// The thread pool behind the matvec kernels: every index exactly once, under repetition,
/// concurrent callers and nesting (which must fall back instead of deadlocking).
final class GGUFKernelWorkersTests: XCTestCase {
    final class Counts: @unchecked Sendable {
        var values: [Int]
        init(_ n: Int) { values = [Int](repeating: 0, count: n) }
    }

    func testEveryIndexRunsExactlyOnceAcrossManyJobs() {
        var g = GGUFTestRNG(seed: 9)
        for _ in 0..<2000 {
            let n = Int(g.next() % 300) + 1
            let counts = Counts(n)
            counts.values.withUnsafeMutableBufferPointer { c in
                KernelWorkers.run(n, threads: 8) { i in c[i] += 1 }
            }
            XCTAssertEqual(counts.values, [Int](repeating: 1, count: n))
        }
    }

    func testConcurrentAndNestedCallersAllComplete() {
        let outer = 16
        let results = Counts(outer)
        DispatchQueue.concurrentPerform(iterations: outer) { j in
            let counts = Counts(500)
            counts.values.withUnsafeMutableBufferPointer { c in
                KernelWorkers.run(50, threads: 4) { i in
                    // A nested run finds the pool busy and falls back; it must still cover its indices.
                    KernelWorkers.run(10, threads: 4) { k in c[10 * i + k] += 1 }
                }
            }
            results.values[j] = counts.values.reduce(0, +) == 500 && counts.values.allSatisfy { $0 == 1 } ? 1 : 0
        }
        XCTAssertEqual(results.values, [Int](repeating: 1, count: outer))
    }

    func testWorkersWakeUpAfterParking() throws {
        let counts = Counts(64)
        counts.values.withUnsafeMutableBufferPointer { c in
            KernelWorkers.run(32, threads: 4) { i in c[i] += 1 }
        }
        // Longer than the spin period, so the workers have parked and must be woken.
        Thread.sleep(forTimeInterval: 0.01)
        counts.values.withUnsafeMutableBufferPointer { c in
            KernelWorkers.run(32, threads: 4) { i in c[32 + i] += 1 }
        }
        XCTAssertEqual(counts.values, [Int](repeating: 1, count: 64))
    }
}
