import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A buffer larger than the caches, allocated and touched once, whose every pass measures the
/// read bandwidth available at that moment: every core sums its share. On a shared machine the
/// bandwidth moves by a factor of two within seconds, so a decode rate is only comparable with
/// samples taken beside it (`assay bench runtime` pairs one with every decode step).
public final class BandwidthProbe: @unchecked Sendable {
    private let count: Int
    private let buffer: UnsafeMutablePointer<Float>

    public init(bytes: Int = 512 << 20) {
        count = max(Kernels.cores * 32, bytes / 4)
        buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        let count = count, buffer = buffer
        Kernels.parallel(Kernels.cores) { c in
            let part = Kernels.chunk(c, of: Kernels.cores, count: count)
            for i in part { buffer[i] = Float(i & 7) }
        }
    }

    deinit { buffer.deallocate() }

    /// Bytes per second of one pass over the buffer.
    public func sample() -> Double {
        let count = count, buffer = buffer, cores = Kernels.cores
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: cores)
        defer { sums.deallocate() }
        let start = DispatchTime.now().uptimeNanoseconds
        Kernels.parallel(cores) { c in
            let part = Kernels.chunk(c, of: cores, count: count)
            sums[c] = Kernels.dotF32(buffer + part.lowerBound, buffer + part.lowerBound, part.count)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Double(count * 4) / max(seconds, 1e-9)
    }
}

/// Measurements for `assay bench runtime` beside `BandwidthProbe`: peak memory, and the weight
/// bytes a decode step has to stream.
public enum RuntimeBenchmark {
    /// Peak resident set size of this process in bytes.
    public static func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int(usage.ru_maxrss) * 1024
    }
}

extension VLMModel {
    /// Whether `MatmulPrecision.bfloat16` takes effect on this CPU.
    public static var supportsBF16Matmul: Bool { Kernels.hasAVX512BF16 }

    /// Bytes of LM weights one decode step reads (all layer matrices and the LM head).
    public var decodeWeightBytes: Int {
        var total = decoder.lmHead.byteCount
        for l in decoder.layers {
            for lin in [l.q, l.k, l.v, l.o, l.gate, l.up, l.down] { total += lin.weight.byteCount }
        }
        return total
    }

    /// Bytes of all weights held (vision and LM).
    public var weightBytes: Int {
        var total = decodeWeightBytes
        if !decoder.tiedHead { total += decoder.embed.byteCount }
        guard let tower = vision?.tower else { return total }
        total += tower.patchEmbed.byteCount + tower.mergerFC1.weight.byteCount + tower.mergerFC2.weight.byteCount
        for b in tower.blocks {
            total += b.qkv.weight.byteCount + b.proj.weight.byteCount
            switch b.mlp {
            case .gated(let g, let u, let d): total += g.weight.byteCount + u.weight.byteCount + d.weight.byteCount
            case .plain(let f1, let f2, _): total += f1.weight.byteCount + f2.weight.byteCount
            }
        }
        return total
    }

    /// The storage format of the LM's layer matrices (`BF16`, `F32`, `Q4_1`, `Q8_0`, …): the most
    /// common one when they differ.
    public var weightFormat: String {
        var counts: [String: Int] = [:]
        for l in decoder.layers {
            for lin in [l.q, l.k, l.v, l.o, l.gate, l.up, l.down] { counts[lin.weight.formatName, default: 0] += 1 }
        }
        return counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key ?? decoder.embed.formatName
    }

    /// The activation path decode uses with quantised weights.
    public var activationMode: ActivationMode { decoder.activations }
}

/// Decode steps timed one by one, each paired with the read bandwidth sampled right before and
/// right after it, so the ratio compares the two under the same load on a shared machine.
public struct PairedDecodeBandwidth: Sendable {
    /// Weight bytes streamed per second by each step (decodeWeightBytes / step time).
    public var streamed: [Double]
    /// Read bandwidth beside each step (mean of the samples before and after it).
    public var sampled: [Double]
    /// streamed / sampled per step.
    public var ratios: [Double] { zip(streamed, sampled).map { $0 / $1 } }

    public static func median(_ values: [Double]) -> Double {
        let s = values.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}

extension VLMModel {
    /// Greedy decode of `steps` tokens after the prompt `ids`, with a bandwidth sample of `probe`
    /// between every two steps (the samples are not part of the steps' times).
    public func pairedDecodeBandwidth(prompt ids: [Int], steps: Int, probe: BandwidthProbe) throws -> PairedDecodeBandwidth {
        let bytes = Double(decodeWeightBytes)
        var stepSeconds: [Double] = [], samples: [Double] = []
        var stepStart: UInt64?
        var stats = GenerationStats()
        _ = try generate(prepare(tokenIds: [ids]), parameters: GenerationParameters(maxNewTokens: steps + 1, stopAtEOS: false),
                         stats: &stats) { _ in
            let now = DispatchTime.now().uptimeNanoseconds
            if let stepStart { stepSeconds.append(Double(now - stepStart) / 1e9) }
            samples.append(probe.sample())
            stepStart = DispatchTime.now().uptimeNanoseconds
        }
        let pairs = min(stepSeconds.count, samples.count - 1)
        return PairedDecodeBandwidth(streamed: (0..<pairs).map { bytes / stepSeconds[$0] },
                                     sampled: (0..<pairs).map { (samples[$0] + samples[$0 + 1]) / 2 })
    }
}
