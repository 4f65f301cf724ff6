#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
#if canImport(Synchronization)
import Synchronization
#endif

/// Splits a loop over rows across cores for the matrix-vector kernels.
///
/// `DispatchQueue.concurrentPerform` is the simple way, but a decode step is ~200 matvecs of
/// 20–150 µs each, and waking a parked libdispatch worker was measured here at 30–50 µs: with two
/// cores, `concurrentPerform` left the second core mostly idle (a 576×1536 Q4_1 matvec took the
/// same 135 µs on one or two threads). `KernelWorkers` keeps its threads spinning for a short
/// while after each job, as ggml's thread pool does, so back-to-back matvecs start on every core
/// at once; after `idleBeforeParking` without work a thread parks on a semaphore and costs nothing.
/// `concurrentPerform` remains the fallback when the pool is busy (a concurrent or nested call)
/// and where the `Synchronization` atomics are unavailable.
enum KernelWorkers {
    /// Runs `body` for every index in 0..<count exactly once, over up to `threads` cores, and
    /// returns when all have run.
    static func run(_ count: Int, threads: Int, _ body: (Int) -> Void) {
        let threads = min(max(threads, 1), count)
        if threads <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        #if canImport(Synchronization)
        if #available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *) {
            if SpinningPool.shared.run(count, threads: threads, body) { return }
        }
        #endif
        let chunks = min(count, threads * 4)
        withoutActuallyEscaping(body) { escapable in
            // concurrentPerform returns only after every iteration has run, so the closure (and the
            // pointers it captures) outlives all uses; each index is visited exactly once.
            let task = UncheckedSendable(escapable)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                for i in (count * c / chunks)..<(count * (c + 1) / chunks) { task.value(i) }
            }
        }
    }
}

#if canImport(Synchronization)
/// The persistent worker threads behind `KernelWorkers` (one per extra core).
///
/// Protocol, per job: the caller publishes the job (closure, chunk count), resets the chunk and
/// finished counters, then bumps `generation`; workers that see a new generation claim chunks from
/// `nextChunk` until none are left and then increment `finished`. The caller claims chunks too and
/// returns only when every worker has reported `finished`, so a job's state is never touched by a
/// worker after the caller moves on. Parking uses the Dekker pattern on `sleepers`/`generation`
/// (both sequentially consistent), so a worker cannot sleep through a new job.
@available(macOS 15.0, iOS 18.0, tvOS 18.0, watchOS 11.0, *)
final class SpinningPool: @unchecked Sendable {  // @unchecked: `job`/`chunks` are handed over by the generation counter
    static let shared = SpinningPool(workers: max(0, RuntimeThreads.count - 1))

    /// How long a worker spins for the next job before parking.
    static let idleBeforeParking: UInt64 = 2_000_000  // ns

    let workerCount: Int
    private let generation = Atomic<Int>(0)
    private let nextChunk = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let wake = DispatchSemaphore(value: 0)
    private var job: UncheckedSendable<(Int) -> Void>?
    private var chunks = 0
    private var count = 0
    /// Workers with an index below this take part in the current job; the others only acknowledge it.
    private var activeWorkers = 0

    private init(workers: Int) {
        workerCount = workers
        for index in 0..<workers {
            let thread = Thread { [unowned self] in self.workerLoop(index: index) }
            thread.name = "assay.kernel-worker"
            thread.start()
        }
    }

    /// Runs the job on the pool; false (and nothing run) when the pool is already running a job
    /// (a concurrent or nested call) or has no workers.
    func run(_ count: Int, threads: Int, _ body: (Int) -> Void) -> Bool {
        guard workerCount > 0,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        else { return false }
        defer { busy.store(false, ordering: .releasing) }
        withoutActuallyEscaping(body) { escapable in
            job = UncheckedSendable(escapable)
            activeWorkers = min(workerCount, threads - 1)
            // More chunks than cores evens out a core that is interrupted.
            chunks = min(count, (activeWorkers + 1) * 4)
            self.count = count
            nextChunk.store(0, ordering: .relaxed)
            finished.store(0, ordering: .relaxed)
            generation.add(1, ordering: .sequentiallyConsistent)
            let parked = sleepers.load(ordering: .sequentiallyConsistent)
            for _ in 0..<parked { wake.signal() }
            work()
            // A worker still on a chunk may have been preempted (a busy machine): after a short
            // spin, yield so it can get the core back instead of spinning through its time slice.
            var spins = 0
            while finished.load(ordering: .acquiring) < workerCount {
                spins += 1
                if spins > 1000 { sched_yield() }
            }
            job = nil
        }
        return true
    }

    private func work() {
        guard let job else { return }
        while true {
            let c = nextChunk.wrappingAdd(1, ordering: .relaxed).oldValue
            if c >= chunks { return }
            for i in (count * c / chunks)..<(count * (c + 1) / chunks) { job.value(i) }
        }
    }

    private func workerLoop(index: Int) {
        // Not the current value: a job published before this thread first ran must still be seen
        // (generation starts at 0, and no second job can start before this worker acknowledged the first).
        var seen = 0
        while true {
            var idleSince: UInt64 = 0
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins & 1023 != 0 { continue }
                sched_yield()  // let other runnable threads have the core while there is no job
                let now = DispatchTime.now().uptimeNanoseconds
                if idleSince == 0 { idleSince = now; continue }
                if now - idleSince < Self.idleBeforeParking { continue }
                sleepers.add(1, ordering: .sequentiallyConsistent)
                if generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                idleSince = 0
            }
            seen = generation.load(ordering: .acquiring)
            if index < activeWorkers { work() }
            finished.add(1, ordering: .releasing)
        }
    }
}
#endif
