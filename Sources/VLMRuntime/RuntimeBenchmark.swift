import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Measurements for `assay bench runtime`: machine bandwidth, peak memory, and the weight bytes
/// a decode step has to stream.
public enum RuntimeBenchmark {
    /// Read bandwidth in bytes/s: every core sums its share of a buffer larger than the caches,
    /// best of a few passes.
    public static func memoryBandwidth(bytes: Int = 1 << 30) -> Double {
        let count = bytes / 4
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buf.deallocate() }
        Kernels.parallel(Kernels.cores) { c in
            let per = count / Kernels.cores
            for i in (c * per)..<((c + 1) * per) { buf[i] = Float(i & 7) }
        }
        var best = 0.0
        for _ in 0..<4 {
            let start = DispatchTime.now().uptimeNanoseconds
            let per = count / Kernels.cores
            let sums = UnsafeMutablePointer<Float>.allocate(capacity: Kernels.cores)
            Kernels.parallel(Kernels.cores) { c in
                sums[c] = Kernels.dotF32(buf + c * per, buf + c * per, per)
            }
            sums.deallocate()
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = max(best, Double(per * Kernels.cores * 4) / seconds)
        }
        return best
    }

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
