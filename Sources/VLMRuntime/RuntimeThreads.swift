import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How many cores the kernels use: every active core, or `$ASSAY_THREADS` when set (`assay
/// sweep --threads` sets it). Read once, when the first kernel runs: the worker pool is sized
/// then, and resizing it under running kernels would race.
public enum RuntimeThreads {
    /// The thread count in effect.
    public static let count: Int = {
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        if let text = ProcessInfo.processInfo.environment["ASSAY_THREADS"], let wanted = Int(text), wanted >= 1 {
            return min(wanted, cores)
        }
        return cores
    }()

    /// Asks for `threads` worker threads; effective only before the first model loads.
    public static func request(_ threads: Int) {
        setenv("ASSAY_THREADS", String(max(1, threads)), 1)
    }
}
