import Foundation

/// Hand-run timing of the quantised matrix-vector kernels (`assay bench` can call this; tests only
/// run it when asked to, since timings are measured, not asserted).
public enum QuantBenchmark {
    /// One measured configuration.
    public struct Result: Sendable, CustomStringConvertible {
        public let name: String
        public let type: GGMLType
        public let rows: Int
        public let columns: Int
        public let mode: ActivationMode
        public let threads: Int
        /// Median wall time of one matvec, in milliseconds.
        public let milliseconds: Double
        /// Weight bytes streamed per second at that median, in GB/s (1e9 bytes); for `prefill`
        /// results, GFLOP/s instead (see `isPrefill`).
        public let gigabytesPerSecond: Double
        /// Whether this is a `prefill` (matmul) measurement.
        public var isPrefill = false

        public var description: String {
            let shape = columns == 0 ? "" : " \(type) \(rows)×\(columns)"
            return "\(name)\(shape) \(mode == .float32 ? "f32-act" : "ggml-act") \(threads)t: "
                + (isPrefill ? String(format: "%.3f ms/matmul, %.1f GFLOP/s", milliseconds, gigabytesPerSecond)
                             : String(format: "%.4f ms/matvec, %.2f GB/s", milliseconds, gigabytesPerSecond))
        }
    }

    /// Median time of `iterations` matvecs of `matrix` (after a warm-up that pages the weights in).
    public static func measure(_ matrix: QuantizedMatrix, mode: ActivationMode, threads: Int,
                               iterations: Int = 200, name: String? = nil) throws -> Result {
        let x = (0..<matrix.columns).map { Float(sin(Double($0) * 0.37)) }
        var y = [Float](repeating: 0, count: matrix.rows)
        var samples: [Double] = []
        samples.reserveCapacity(iterations)
        try x.withUnsafeBufferPointer { xb in
            try y.withUnsafeMutableBufferPointer { yb in
                for _ in 0..<max(3, iterations / 10) { try matrix.matvec(xb, into: yb, mode: mode, threads: threads) }
                for _ in 0..<max(1, iterations) {
                    let start = DispatchTime.now().uptimeNanoseconds
                    try matrix.matvec(xb, into: yb, mode: mode, threads: threads)
                    samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                }
            }
        }
        samples.sort()
        let ms = samples[samples.count / 2]
        return Result(name: name ?? matrix.name, type: matrix.type, rows: matrix.rows, columns: matrix.columns,
                      mode: mode, threads: threads, milliseconds: ms,
                      gigabytesPerSecond: Double(matrix.rows * matrix.rowBytes) / (ms / 1e3) / 1e9)
    }

    /// One decode step's worth of weight streaming: a matvec with every 2-D tensor of the file once
    /// (for a tied model `token_embd` is the output layer), so the weights come from DRAM/L3 rather
    /// than a warm L2 as in `measure`. Returns the median over `iterations` passes.
    public static func decodePass(file: GGUFFile, mode: ActivationMode, threads: Int,
                                  iterations: Int = 10) throws -> Result {
        let matrices = try file.tensors.filter { $0.dimensions.count == 2 && $0.type.isSupportedByKernels }
            .map { try file.matrix(named: $0.name) }
        let inputs = matrices.map { m in (0..<m.columns).map { Float(sin(Double($0) * 0.37)) } }
        var outputs = matrices.map { [Float](repeating: 0, count: $0.rows) }
        var samples: [Double] = []
        for pass in 0..<(max(1, iterations) + 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            for i in matrices.indices {
                try inputs[i].withUnsafeBufferPointer { x in
                    try outputs[i].withUnsafeMutableBufferPointer { y in
                        try matrices[i].matvec(x, into: y, mode: mode, threads: threads)
                    }
                }
            }
            if pass > 0 { samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) }
        }
        samples.sort()
        let ms = samples[samples.count / 2]
        let bytes = matrices.reduce(0) { $0 + $1.rows * $1.rowBytes }
        return Result(name: "all \(matrices.count) matrices", type: matrices.first?.type ?? .f32, rows: matrices.count,
                      columns: 0, mode: mode, threads: threads, milliseconds: ms,
                      gigabytesPerSecond: Double(bytes) / (ms / 1e3) / 1e9)
    }

    /// Prefill: `matmul` of `vectors` activations through `matrix` (tiled dequantisation + sgemm).
    /// The rate is GFLOP/s (2·rows·columns·vectors per call). OpenBLAS uses its own threads for the
    /// sgemm part whatever `threads` says; `threads` only splits the dequantisation.
    public static func prefill(_ matrix: QuantizedMatrix, vectors: Int, threads: Int, iterations: Int = 10,
                               name: String? = nil) throws -> Result {
        let x = (0..<(vectors * matrix.columns)).map { Float(sin(Double($0) * 0.37)) }
        var y = [Float](repeating: 0, count: vectors * matrix.rows)
        var samples: [Double] = []
        try x.withUnsafeBufferPointer { xb in
            try y.withUnsafeMutableBufferPointer { yb in
                try matrix.matmul(xb, count: vectors, into: yb, threads: threads)
                for _ in 0..<max(1, iterations) {
                    let start = DispatchTime.now().uptimeNanoseconds
                    try matrix.matmul(xb, count: vectors, into: yb, threads: threads)
                    samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
                }
            }
        }
        samples.sort()
        let ms = samples[samples.count / 2]
        var result = Result(name: "\(name ?? matrix.name) ×\(vectors) vectors", type: matrix.type, rows: matrix.rows,
                            columns: matrix.columns, mode: .float32, threads: threads, milliseconds: ms,
                            gigabytesPerSecond: 2.0 * Double(matrix.rows * matrix.columns * vectors) / (ms / 1e3) / 1e9)
        result.isPrefill = true
        return result
    }

    /// The decode shapes of SmolLM2-135M: `blk.0.ffn_up` (1536 rows × 576, Q4_1), `blk.0.ffn_down`
    /// (576 × 1536, Q4_1) and the tied output `token_embd` (49152 × 576, Q8_0), on both activation
    /// paths, single-threaded and on `threads` cores.
    public static func smolLM2Shapes(file: GGUFFile, threads: Int = QuantizedMatrix.defaultThreadCount,
                                     iterations: Int = 200) throws -> [Result] {
        var results: [Result] = []
        for name in ["blk.0.ffn_up.weight", "blk.0.ffn_down.weight", "token_embd.weight"] {
            let m = try file.matrix(named: name)
            let n = name.hasPrefix("token_embd") ? max(10, iterations / 10) : iterations
            for mode in [ActivationMode.float32, .ggml] {
                for t in Set([1, threads]).sorted() {
                    results.append(try measure(m, mode: mode, threads: t, iterations: n, name: name))
                }
            }
        }
        return results
    }
}
