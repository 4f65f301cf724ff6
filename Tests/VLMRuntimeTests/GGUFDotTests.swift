import Foundation
import XCTest
@testable import VLMRuntime

/// Quantised dot products and matrix-vector products, on both activation paths.
final class GGUFDotTests: XCTestCase {
    private static let formats: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q6_K]

    /// A random matrix of `type` with well-scaled blocks (random f16 scales would overflow the sums).
    private func randomMatrix(_ type: GGMLType, rows: Int, columns: Int, seed: UInt64) throws -> QuantizedMatrix {
        var g = GGUFTestRNG(seed: seed)
        let values = (0..<(rows * columns)).map { i in g.float(scale: i % 7 == 0 ? 3 : 0.5) + (i % 5 == 0 ? 0.2 : 0) }
        let bytes: [UInt8]
        switch type {
        case .f32: bytes = values.flatMap { f in withUnsafeBytes(of: f.bitPattern.littleEndian) { Array($0) } }
        case .f16: bytes = values.flatMap { f in withUnsafeBytes(of: HalfFloat.halfBits(from: f).littleEndian) { Array($0) } }
        case .bf16: bytes = values.flatMap { f in withUnsafeBytes(of: HalfFloat.bfloat16Bits(from: f).littleEndian) { Array($0) } }
        case .q8_0:
            return try QuantizedMatrix.quantizingToQ8_0(values, rows: rows, columns: columns, name: "q8_0")
        default:
            // Random quants with sane scales: the dot kernels only need valid blocks.
            var raw = ggufRandomBlocks(type, elements: rows * columns, seed: seed)
            let fields: [Int]
            switch type {
            case .q4_0: fields = [0]
            case .q4_1, .q4_K: fields = [0, 2]
            case .q6_K: fields = [208]
            default: fields = []
            }
            for b in 0..<(raw.count / type.blockBytes) {
                for f in fields {
                    let h = HalfFloat.halfBits(from: g.float(scale: type.blockSize == 256 ? 0.01 : 0.2))
                    raw[b * type.blockBytes + f] = UInt8(truncatingIfNeeded: h)
                    raw[b * type.blockBytes + f + 1] = UInt8(truncatingIfNeeded: h >> 8)
                }
            }
            bytes = raw
        }
        let storage = GGUFStorage(copying: bytes)
        return try QuantizedMatrix(type: type, rows: rows, columns: columns, bytes: storage.buffer, owner: storage, name: type.name)
    }

    private func randomVector(_ n: Int, seed: UInt64) -> [Float] {
        var g = GGUFTestRNG(seed: seed)
        return (0..<n).map { _ in g.float(scale: 4) }
    }

    func testFloatPathEqualsTheDequantisedDotToFloatRoundingForEveryFormat() throws {
        for type in Self.formats {
            let columns = 1024 + (type.blockSize == 1 ? 3 : 0)  // an odd length exercises the float tails
            let m = try randomMatrix(type, rows: 12, columns: columns, seed: 100 + UInt64(type.rawValue))
            let x = randomVector(columns, seed: 7)
            let y = try m.matvec(x, mode: .float32, threads: 2)
            for r in 0..<m.rows {
                let (ref, mag) = ggufReferenceDot(try m.dequantizeRow(r), x)
                let single = try m.dot(row: r, vector: x)
                XCTAssertEqual(Double(single), ref, accuracy: 2e-6 * mag + 1e-6, "\(type) row \(r)")
                XCTAssertEqual(y[r].bitPattern, single.bitPattern, "\(type) row \(r): matvec and dot take the same path")
            }
        }
    }

    func testGGMLPathStaysWithinActivationQuantisationErrorForEveryFormat() throws {
        for type in Self.formats {
            let columns = 1024
            let m = try randomMatrix(type, rows: 12, columns: columns, seed: 200 + UInt64(type.rawValue))
            let x = randomVector(columns, seed: 8)
            let a = try QuantizedActivation(quantizing: x, for: type)
            XCTAssertEqual(a.format, QuantizedActivation.format(for: type))
            let y = try m.matvec(x, mode: .ggml, threads: 1)
            for r in 0..<m.rows {
                let w = try m.dequantizeRow(r)
                let (ref, mag) = ggufReferenceDot(w, x)
                // 8-bit activations: relative error per product ≤ 1/254 of the block maximum.
                let bound = (type == .f32 ? 1e-6 : type == .f16 ? 1e-3 : type == .bf16 ? 8e-3 : 1.5e-2) * mag
                XCTAssertEqual(Double(y[r]), ref, accuracy: bound + 1e-6, "\(type) row \(r)")
                XCTAssertEqual(try m.dot(row: r, vector: a), y[r], accuracy: 1e-5 * Float(mag), "\(type) row \(r)")
            }
        }
    }

    func testGGMLPathIsExactAgainstAScalarIntegerReference() throws {
        // Q4_1 × Q8_1 and Q4_K × Q8_K written out per block the way ggml's generic C does.
        let x = randomVector(512, seed: 9)
        let q41 = try randomMatrix(.q4_1, rows: 3, columns: 512, seed: 31)
        let a1 = try QuantizedActivation(quantizing: x, for: .q4_1).encodedBytes
        for r in 0..<3 {
            let w = Array(q41.bytes[(r * q41.rowBytes)..<((r + 1) * q41.rowBytes)])
            var ref = 0.0
            for b in 0..<16 {
                let wo = b * 20, ao = b * 36
                var sumi = 0
                for j in 0..<16 {
                    sumi += Int(w[wo + 4 + j] & 0xF) * Int(Int8(bitPattern: a1[ao + 4 + j]))
                    sumi += Int(w[wo + 4 + j] >> 4) * Int(Int8(bitPattern: a1[ao + 20 + j]))
                }
                ref += Double(GGMLScalarReference.f16(w, wo) * GGMLScalarReference.f16(a1, ao)) * Double(sumi)
                    + Double(GGMLScalarReference.f16(w, wo + 2) * GGMLScalarReference.f16(a1, ao + 2))
            }
            XCTAssertEqual(Double(try q41.matvec(x, mode: .ggml)[r]), ref, accuracy: 1e-5 * abs(ref) + 1e-5)
        }
        let q4k = try randomMatrix(.q4_K, rows: 2, columns: 512, seed: 32)
        let (dk, qk, bsk) = GGMLScalarReference.quantizeQ8_K(x)
        for r in 0..<2 {
            let w = Array(q4k.bytes[(r * q4k.rowBytes)..<((r + 1) * q4k.rowBytes)])
            var ref = 0.0
            for b in 0..<2 {
                let o = b * 144
                let s = Array(w[(o + 4)..<(o + 16)])
                var sumi = 0, summ = 0
                for k in 0..<8 {
                    let (sc, mn): (UInt8, UInt8) = k < 4 ? (s[k] & 63, s[k + 4] & 63)
                        : ((s[k + 4] & 0xF) | ((s[k - 4] >> 6) << 4), (s[k + 4] >> 4) | ((s[k] >> 6) << 4))
                    var dot = 0
                    for l in 0..<32 {
                        let byte = w[o + 16 + 32 * (k / 2) + l]
                        let q = k % 2 == 0 ? byte & 0xF : byte >> 4
                        dot += Int(q) * Int(qk[256 * b + 32 * k + l])
                    }
                    sumi += Int(sc) * dot
                    summ += Int(mn) * (Int(bsk[16 * b + 2 * k]) + Int(bsk[16 * b + 2 * k + 1]))
                }
                ref += Double(GGMLScalarReference.f16(w, o) * dk[b]) * Double(sumi)
                    - Double(GGMLScalarReference.f16(w, o + 2) * dk[b]) * Double(summ)
            }
            XCTAssertEqual(Double(try q4k.matvec(x, mode: .ggml)[r]), ref, accuracy: 1e-5 * abs(ref) + 1e-5)
        }
    }

    func testIntegerKernelsMatchAScalarIntegerDotIncludingOddBlockCountsAndMinus128() throws {
        // Q8_0 · Q8_0 and Q4_1 · Q8_1 take the Int16 kernels; 17 blocks leave a Q4_1 tail block,
        // and raw random Q8_0 bytes include the weight -128.
        var g = GGUFTestRNG(seed: 41)
        let columns = 17 * 32
        let x = (0..<columns).map { _ in g.float(scale: 3) }
        for type in [GGMLType.q8_0, .q4_1] {
            var raw = ggufRandomBlocks(type, elements: 5 * columns, seed: 42 + UInt64(type.rawValue))
            for b in 0..<(raw.count / type.blockBytes) {  // tame the scales
                let h = HalfFloat.halfBits(from: g.float(scale: 0.05))
                raw[b * type.blockBytes] = UInt8(truncatingIfNeeded: h)
                raw[b * type.blockBytes + 1] = UInt8(truncatingIfNeeded: h >> 8)
            }
            XCTAssertTrue(type != .q8_0 || raw.enumerated().contains { $0.offset % 34 >= 2 && $0.element == 0x80 })
            let storage = GGUFStorage(copying: raw)
            let m = try QuantizedMatrix(type: type, rows: 5, columns: columns, bytes: storage.buffer, owner: storage, name: type.name)
            let act = try QuantizedActivation(quantizing: x, for: type)
            let enc = act.encodedBytes
            let y = try m.matvec(x, mode: .ggml)
            for r in 0..<5 {
                let w = Array(raw[(r * m.rowBytes)..<((r + 1) * m.rowBytes)])
                var ref = 0.0
                for b in 0..<17 {
                    if type == .q8_0 {
                        var sumi = 0
                        for j in 0..<32 { sumi += Int(Int8(bitPattern: w[34 * b + 2 + j])) * Int(Int8(bitPattern: enc[34 * b + 2 + j])) }
                        ref += Double(GGMLScalarReference.f16(w, 34 * b) * GGMLScalarReference.f16(enc, 34 * b)) * Double(sumi)
                    } else {
                        var sumi = 0
                        for j in 0..<16 {
                            sumi += Int(w[20 * b + 4 + j] & 0xF) * Int(Int8(bitPattern: enc[36 * b + 4 + j]))
                            sumi += Int(w[20 * b + 4 + j] >> 4) * Int(Int8(bitPattern: enc[36 * b + 20 + j]))
                        }
                        ref += Double(GGMLScalarReference.f16(w, 20 * b) * GGMLScalarReference.f16(enc, 36 * b)) * Double(sumi)
                            + Double(GGMLScalarReference.f16(w, 20 * b + 2) * GGMLScalarReference.f16(enc, 36 * b + 2))
                    }
                }
                XCTAssertEqual(Double(y[r]), ref, accuracy: 1e-5 * abs(ref) + 1e-4, "\(type) row \(r)")
                XCTAssertEqual(try m.dot(row: r, vector: act), y[r], "\(type) row \(r)")
            }
        }
    }

    func testNativeKernelsAgreeWithTheSwiftKernelsOnBothPaths() throws {
        guard NativeKernels.level != 0 else { throw XCTSkip("no AVX2/AVX512 here: the Swift kernels are the only ones") }
        for type in [GGMLType.q4_1, .q8_0] {
            let columns = 17 * 32  // an odd block count
            let m = try randomMatrix(type, rows: 23, columns: columns, seed: 300 + UInt64(type.rawValue))
            let x = randomVector(columns, seed: 31)
            let base = try XCTUnwrap(m.bytes.baseAddress)
            func run(_ a: PreparedActivation) -> [Float] {
                var y = [Float](repeating: 0, count: m.rows)
                a.withView { v in y.withUnsafeMutableBufferPointer { out in
                    QuantizedMatrix.products(type, columns, m.rowBytes, base, 0..<m.rows, v, out.baseAddress!)  // invariant: rows > 0
                } }
                return y
            }
            let exact = x.withUnsafeBufferPointer { xb in
                (run(PreparedActivation(exact: xb.baseAddress!, count: columns, for: type, native: true)),  // invariant: non-empty
                 run(PreparedActivation(exact: xb.baseAddress!, count: columns, for: type, native: false)))
            }
            let act = try QuantizedActivation(quantizing: x, for: type)
            let ggml = act.encodedBytes.withUnsafeBytes { e in
                (run(PreparedActivation(encoded: e.baseAddress!, format: act.format, weightType: type, count: columns, native: true)),  // invariant: non-empty
                 run(PreparedActivation(encoded: e.baseAddress!, format: act.format, weightType: type, count: columns, native: false)))
            }
            // Native dequantisation (prefill tiles) is bit-identical to the reference one.
            var rows = [Float](repeating: 0, count: m.rows * columns)
            rows.withUnsafeMutableBufferPointer { NativeKernels.dequantize(type, base, rowBytes: m.rowBytes, rows: m.rows, columns: columns, into: $0.baseAddress!) }  // invariant: non-empty
            XCTAssertEqual(rows.map(\.bitPattern), try m.dequantizeAll().map(\.bitPattern), "\(type) native dequantisation")
            for r in 0..<m.rows {
                let (_, mag) = ggufReferenceDot(try m.dequantizeRow(r), x)
                XCTAssertEqual(exact.0[r], exact.1[r], accuracy: Float(2e-6 * mag + 1e-6), "\(type) f32 row \(r)")
                XCTAssertEqual(ggml.0[r], ggml.1[r], accuracy: Float(2e-6 * mag + 1e-6), "\(type) ggml row \(r)")
            }
        }
    }

    func testFastRoundingIsRoundfForEveryQuantRange() {
        var g = GGUFTestRNG(seed: 4)
        var samples: [Float] = [0.49999997, 0.5, -0.5, 1.5, 2.5, -2.5, 126.5, 127.49998, 127.5, -127.5, 128.5, 1e30, -1e30,
                                .infinity, -.infinity, 0, -0, .leastNonzeroMagnitude]
        for _ in 0..<100_000 { samples.append(g.float(scale: 300)) }
        for k in -256...256 { samples.append(Float(k) / 2) }
        for v in samples {
            let expected = Int8(max(-128, min(127, v.rounded(.toNearestOrAwayFromZero))))
            XCTAssertEqual(ActivationQuantization.roundAwayInt8(v), expected, "\(v)")
        }
        XCTAssertEqual(ActivationQuantization.roundAwayInt8(.nan), 0)
    }

    func testQ8KActivationQuantisationMatchesGGMLReference() throws {
        var x = randomVector(1024, seed: 12)
        for i in 256..<512 { x[i] = 0 }  // an all-zero block
        x[600] = -9; x[601] = 4.5        // the signed maximum picks the scale's sign
        let bytes = try QuantizedActivation(quantizing: x, for: .q6_K).encodedBytes
        let (d, qs, bs) = GGMLScalarReference.quantizeQ8_K(x)
        for b in 0..<4 {
            let o = b * 292
            XCTAssertEqual(bytes[o..<(o + 4)].withUnsafeBytes { $0.loadUnaligned(as: Float.self) }.bitPattern, d[b].bitPattern)
            XCTAssertEqual(bytes[(o + 4)..<(o + 260)].map { Int8(bitPattern: $0) }, Array(qs[(256 * b)..<(256 * b + 256)]))
            let sums = (0..<16).map { g in bytes[(o + 260 + 2 * g)..<(o + 262 + 2 * g)].withUnsafeBytes { $0.loadUnaligned(as: Int16.self) } }
            XCTAssertEqual(sums, Array(bs[(16 * b)..<(16 * b + 16)]))
        }
    }

    func testQ8_0QuantisationOfWeightsMatchesGGUFPy() throws {
        // gguf-py 0.19.0 `quants.quantize(x, Q8_0)` (= ggml's quantize_row_q8_0_ref) on the same inputs.
        var g = GGUFTestRNG(seed: 77)
        var x = (0..<4096).map { i in g.float(scale: [0.001, 0.01, 0.1, 1, 10, 100, 1000][(i / 32) % 7]) }
        for i in 0..<32 { x[i] = 0 }
        for i in 32..<64 { x[i] = Float(i - 32) - 15.5 }
        let ties: [Float] = [127, 62.5, -62.5, 0.5, -0.5, 1.5, 2.5, -2.5]
        for i in 64..<96 { x[i] = i - 64 < ties.count ? ties[i - 64] : 0 }
        let m = try QuantizedMatrix.quantizingToQ8_0(x, rows: 1, columns: 4096)
        XCTAssertEqual(ggufFNV1a(m.bytes), 0x3664_e7f6_e108_1fcf)
        // roundf: halves go away from zero (62.5 → 63), unlike the hardware's nearest-even.
        XCTAssertEqual(m.bytes[(2 * 34 + 2)..<(2 * 34 + 10)].map { Int8(bitPattern: $0) }, [127, 63, -63, 1, -1, 2, 3, -3])
        XCTAssertEqual(Array(try m.dequantizeRow(0)[0..<32]), [Float](repeating: 0, count: 32))
    }

    func testActivationQuantisationOfAGoldenHiddenStateMatchesTheNumpyReference() throws {
        // gguf_ref.quantize_q8 (the goldens' numpy llama.cpp emulation) on plain.final_norm_last,
        // re-encoded in ggml's block layout and fingerprinted.
        let x = try GGUFFixtures.goldens().floats("plain.final_norm_last")
        XCTAssertEqual(ggufFNV1a(try QuantizedActivation(quantizing: x, for: .q8_0).encodedBytes), 0x94e2_5c81_c845_e98f)
        XCTAssertEqual(ggufFNV1a(try QuantizedActivation(quantizing: x, for: .q4_1).encodedBytes), 0x9fe6_2582_411e_cf89)
    }

    // MARK: The real model

    func testTiedOutputMatvecReproducesTheGoldenLogitsOnTheFloatPath() throws {
        let file = try GGUFFixtures.model()
        let g = try GGUFFixtures.goldens()
        let embd = try file.matrix(named: "token_embd.weight")
        XCTAssertEqual(embd.rows, 49_152)
        // Two prompts: a full-vocabulary matvec takes seconds in an unoptimised test build.
        for prompt in ["plain", "chat"] {
            let h = g.floats("\(prompt).final_norm_last")
            let golden = g.floats("\(prompt).logits_last")
            let logits = try embd.matvec(h, mode: .float32)
            let maxAbs = zip(logits, golden).map { abs($0 - $1) }.max() ?? .infinity
            // The README's fp32-path bound for a whole forward is 2e-3; one matvec is far tighter.
            XCTAssertLessThan(maxAbs, 1e-4, prompt)
            XCTAssertEqual(logits.indices.max { logits[$0] < logits[$1] }, golden.indices.max { golden[$0] < golden[$1] }, prompt)
        }
    }

    /// Outputs of gguf_ref.QuantWeight(...).matmul(plain.final_norm_last): the goldens' numpy
    /// emulation of llama.cpp's quantised-activation dot products (float64 accumulation).
    private static let numpyGGMLReference: [(tensor: String, argmax: Int, norm: Double, values: [Int: Double])] = [
        ("token_embd.weight", 7268, 1784.6684841495571,
         [0: -3.1530215740203857, 1: -10.387957572937012, 2: -9.722807884216309, 17: 0.1374245584011078,
          1000: 1.566169261932373, 4096: -7.637845039367676, 12345: -7.397287368774414, 30000: -2.141066074371338,
          49151: -13.717742919921875]),
        ("blk.0.ffn_gate.weight", 1448, 344.17197966658017,
         [0: 1.8749358654022217, 1: 6.49771785736084, 2: 5.210221290588379, 17: 0.8003937005996704, 1000: 3.7694554328918457]),
        ("blk.5.attn_k.weight", 121, 146.85098965863764,
         [0: 5.241947650909424, 1: 3.8868188858032227, 2: 1.6887186765670776, 17: -4.324679374694824]),
    ]

    func testGGMLPathReproducesTheNumpyLlamaCppEmulation() throws {
        let file = try GGUFFixtures.model()
        let g = try GGUFFixtures.goldens()
        let x = g.floats("plain.final_norm_last")
        var logits: [Float] = []
        for ref in Self.numpyGGMLReference {
            let y = try file.matrix(named: ref.tensor).matvec(x, mode: .ggml)
            if ref.tensor == "token_embd.weight" { logits = y }
            XCTAssertEqual(y.indices.max { y[$0] < y[$1] }, ref.argmax, ref.tensor)
            let norm = sqrt(y.reduce(0.0) { $0 + Double($1) * Double($1) })
            XCTAssertEqual(norm, ref.norm, accuracy: 1e-5 * ref.norm, ref.tensor)
            for (i, v) in ref.values {
                XCTAssertEqual(Double(y[i]), v, accuracy: 2e-5 * max(1, abs(v)), "\(ref.tensor)[\(i)]")
            }
        }
        // Against the fp32 logits the quantised path is only close, as the README says.
        let golden = g.floats("plain.logits_last")
        let d = zip(logits, golden).map { Double($0 - $1) }
        let rms = sqrt(d.reduce(0) { $0 + $1 * $1 } / Double(d.count))
        XCTAssertLessThan(rms, 0.1)
        XCTAssertLessThan(d.map(abs).max() ?? .infinity, 0.5)
    }

    func testQ4_1MatvecsOfTheModelEqualTheDequantisedReference() throws {
        let file = try GGUFFixtures.model()
        let g = try GGUFFixtures.goldens()
        let hidden = g.floats("plain.hidden_last")
        let x576 = Array(hidden[(10 * 576)..<(11 * 576)])
        var x1536 = [Float](); for _ in 0..<3 { x1536 += Array(x576[0..<512]) }
        for (name, x) in [("blk.3.ffn_up.weight", x576), ("blk.3.attn_v.weight", x576), ("blk.3.ffn_down.weight", x1536)] {
            let m = try file.matrix(named: name)
            let y = try m.matvec(x, mode: .float32)
            for r in stride(from: 0, to: m.rows, by: 37) {
                let (ref, mag) = ggufReferenceDot(try m.dequantizeRow(r), x)
                XCTAssertEqual(Double(y[r]), ref, accuracy: 2e-6 * mag + 1e-6, "\(name) row \(r)")
            }
        }
    }

    func testSharedActivationServesSeveralMatricesAndRejectsTheWrongFormat() throws {
        let file = try GGUFFixtures.model()
        let x = try GGUFFixtures.goldens().floats("chat.final_norm_last")
        let a = try QuantizedActivation(quantizing: x, for: .q4_1)
        for name in ["blk.7.attn_q.weight", "blk.7.attn_k.weight", "blk.7.attn_v.weight"] {
            let m = try file.matrix(named: name)
            var y = [Float](repeating: 0, count: m.rows)
            try y.withUnsafeMutableBufferPointer { try m.matvec(a, into: $0) }
            XCTAssertEqual(y, try m.matvec(x, mode: .ggml), name)
        }
        let embd = try file.matrix(named: "token_embd.weight")
        var out = [Float](repeating: 0, count: embd.rows)
        XCTAssertThrowsError(try out.withUnsafeMutableBufferPointer { try embd.matvec(a, into: $0) }) { error in
            XCTAssertEqual(error as? QuantError,
                           .activationFormatMismatch(name: "token_embd.weight", expected: .q8_0, got: .q8_1))
        }
    }

    func testShapeErrorsAreThrownNotTrapped() throws {
        let m = try randomMatrix(.q4_1, rows: 4, columns: 64, seed: 1)
        XCTAssertThrowsError(try m.matvec([Float](repeating: 1, count: 63))) { error in
            XCTAssertEqual(error as? QuantError, .lengthMismatch(name: "Q4_1", expected: 64, got: 63))
        }
        XCTAssertThrowsError(try m.dot(row: 4, vector: [Float](repeating: 1, count: 64))) { error in
            XCTAssertEqual(error as? QuantError, .rowOutOfRange(name: "Q4_1", row: 4, rows: 4))
        }
        XCTAssertThrowsError(try m.dequantizeRow(-1))
        let storage = GGUFStorage(copying: [UInt8](repeating: 0, count: 100))
        XCTAssertThrowsError(try QuantizedMatrix(type: .q4_1, rows: 8, columns: 64, bytes: storage.buffer, owner: storage))
        XCTAssertThrowsError(try QuantizedMatrix(type: .q4_1, rows: 1, columns: 48, bytes: storage.buffer, owner: storage))
        XCTAssertThrowsError(try QuantizedMatrix(type: .q5_K, rows: 0, columns: 256, bytes: storage.buffer, owner: storage)) { error in
            XCTAssertEqual(error as? QuantError, .unsupportedType(name: "matrix", type: .q5_K))
        }
        XCTAssertThrowsError(try QuantizedMatrix.quantizingToQ8_0([1, 2, 3], rows: 1, columns: 3))
        // A matrix with no columns multiplies to zeros.
        let empty = try QuantizedMatrix(type: .q8_0, rows: 3, columns: 0, bytes: storage.buffer, owner: storage)
        XCTAssertEqual(try empty.matvec([]), [0, 0, 0])
        XCTAssertEqual(try empty.matvec([], mode: .ggml), [0, 0, 0])
        XCTAssertThrowsError(try QuantizedActivation(quantizing: [1, 2], for: .q4_1))
        // Non-finite activations give non-finite or garbage numbers, never a trap.
        var bad = [Float](repeating: 1, count: 64); bad[3] = .nan; bad[40] = .infinity
        _ = try m.matvec(bad, mode: .ggml)
        _ = try QuantizedActivation(quantizing: [Float](repeating: .nan, count: 256), for: .q4_K)
        _ = try QuantizedMatrix.quantizingToQ8_0([Float](repeating: .infinity, count: 32), rows: 1, columns: 32)
    }

    /// Batched decode (several sequences through one weight pass, `assay serve`): the native
    /// kernels widen each block once for up to four vectors, and every vector must get the same
    /// bits as alone, whatever the batch size, the row count (not a multiple of the 16-row
    /// stripes) or the block count (odd).
    func testBatchedRowProductsAreBitIdenticalToOneVectorAtATime() throws {
        for type in [GGMLType.q4_1, .q8_0] {
            for (rows, blocks) in [(37, 17), (16, 1), (5, 18)] {
                let columns = blocks * 32
                let m = try randomMatrix(type, rows: rows, columns: columns, seed: 900 + UInt64(rows) + UInt64(type.rawValue))
                let base = try XCTUnwrap(m.bytes.baseAddress)
                for count in [1, 2, 3, 4, 5, 8, 9] {
                    let xs = (0..<count).map { randomVector(columns, seed: 70 + UInt64($0)) }
                    let prepared = xs.map { x in x.withUnsafeBufferPointer { PreparedActivation(exact: $0.baseAddress!, count: columns, for: type) } }  // invariant: non-empty
                    var batched = [Float](repeating: .nan, count: count * rows)
                    PreparedActivation.withViews(prepared) { views in
                        views.withUnsafeBufferPointer { v in batched.withUnsafeMutableBufferPointer { out in
                            QuantizedMatrix.products(type, columns, m.rowBytes, base, 0..<rows, v.baseAddress!, count: count,  // invariant: non-empty
                                                     out.baseAddress!, ldy: rows)
                        } }
                    }
                    for (i, a) in prepared.enumerated() {
                        var alone = [Float](repeating: .nan, count: rows)
                        a.withView { v in alone.withUnsafeMutableBufferPointer { out in
                            QuantizedMatrix.products(type, columns, m.rowBytes, base, 0..<rows, v, out.baseAddress!)  // invariant: rows > 0
                        } }
                        XCTAssertEqual(Array(batched[(i * rows)..<((i + 1) * rows)]).map(\.bitPattern), alone.map(\.bitPattern),
                                       "\(type) \(rows)×\(columns), vector \(i) of \(count)")
                    }
                    // A part of the rows (a worker's chunk) lands at its offset, the rest untouched.
                    var part = [Float](repeating: .nan, count: count * rows)
                    PreparedActivation.withViews(prepared) { views in
                        views.withUnsafeBufferPointer { v in part.withUnsafeMutableBufferPointer { out in
                            QuantizedMatrix.products(type, columns, m.rowBytes, base, 1..<rows, v.baseAddress!, count: count,  // invariant: non-empty
                                                     out.baseAddress! + 1, ldy: rows)
                        } }
                    }
                    for i in 0..<count {
                        XCTAssertTrue(part[i * rows].isNaN, "\(type): row 0 of vector \(i) written")
                        XCTAssertEqual(Array(part[(i * rows + 1)..<((i + 1) * rows)]).map(\.bitPattern),
                                       Array(batched[(i * rows + 1)..<((i + 1) * rows)]).map(\.bitPattern), "\(type) part, vector \(i)")
                    }
                }
            }
        }
    }
}

/// Prefill: many vectors through tiled dequantisation and sgemm.
final class GGUFMatmulTests: XCTestCase {
    func testPermutedDequantisationHoldsTheSameBitsInTheKernelOrder() throws {
        for type in [GGMLType.q8_0, .q4_0, .q4_1, .q4_K, .q6_K] {
            let raw = ggufRandomBlocks(type, elements: 1024, seed: 500 + UInt64(type.rawValue))
            var natural = [Float](repeating: 0, count: 1024), permuted = natural
            raw.withUnsafeBytes { r in
                QuantBlocks.dequantize(type, r.baseAddress!, count: 1024, into: &natural)
                QuantBlocks.dequantizePermuted(type, r.baseAddress!, count: 1024, into: &permuted)
            }
            let expected = PreparedActivation.blockPermuted(count: 1024) { natural[$0] }
            XCTAssertEqual(permuted.map(\.bitPattern), expected.map(\.bitPattern), "\(type)")
        }
    }

    func testMatmulEqualsPerVectorMatvecs() throws {
        var g = GGUFTestRNG(seed: 5)
        for type in [GGMLType.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q6_K] {
            let rows = 40, columns = 512, count = 3
            let raw = ggufRandomBlocks(type == .f32 ? .f16 : type, elements: rows * columns, seed: 600 + UInt64(type.rawValue))
            var bytes = raw
            if type == .f32 {  // F32 from the f16 values: finite and varied
                bytes = []
                for i in 0..<(rows * columns) {
                    let h = UInt16(raw[2 * i]) | UInt16(raw[2 * i + 1]) << 8
                    GGUFWriter.append(min(max(HalfFloat.float(fromHalfBits: h), -100), 100).bitPattern, to: &bytes)
                }
            }
            // Tame the random scales so the sums stay far from overflow.
            if type.blockSize > 1 {
                let field = type == .q6_K ? 208 : 0
                for b in 0..<(bytes.count / type.blockBytes) {
                    let h = HalfFloat.halfBits(from: g.float(scale: 0.01))
                    bytes[b * type.blockBytes + field] = UInt8(truncatingIfNeeded: h)
                    bytes[b * type.blockBytes + field + 1] = UInt8(truncatingIfNeeded: h >> 8)
                }
            } else if type != .f32 {
                for i in stride(from: 1, to: bytes.count, by: 2) where bytes[i] & 0x7F > 0x50 { bytes[i] = 0x3C }
            }
            let storage = GGUFStorage(copying: bytes)
            let m = try QuantizedMatrix(type: type, rows: rows, columns: columns, bytes: storage.buffer, owner: storage, name: type.name)
            let x = (0..<(count * columns)).map { _ in g.float(scale: 2) }
            let y = try m.matmul(x, count: count)
            for t in 0..<count {
                let row = Array(x[(t * columns)..<((t + 1) * columns)])
                for r in 0..<rows {
                    let (ref, mag) = ggufReferenceDot(try m.dequantizeRow(r), row)
                    XCTAssertEqual(Double(y[t * rows + r]), ref, accuracy: 2e-6 * mag + 1e-6, "\(type) t=\(t) r=\(r)")
                }
            }
        }
    }

    func testMatmulOfTheModelMatchesItsMatvecs() throws {
        let file = try GGUFFixtures.model()
        let hidden = try GGUFFixtures.goldens().floats("plain.hidden_all")  // [31, 12, 576]
        let x = Array(hidden[(5 * 12 * 576)..<(6 * 12 * 576)])            // layer-5 input, 12 positions
        let m = try file.matrix(named: "blk.5.attn_q.weight")
        let y = try m.matmul(x, count: 12)
        for t in [0, 7, 11] {
            let xt = Array(x[(t * 576)..<((t + 1) * 576)])
            let single = try m.matvec(xt)
            for r in 0..<576 {
                // The residual stream reaches ~860, so sums cancel: the rounding error scales with
                // Σ|w·x|, not with the result (both paths are within ~6e-7 of it in Double).
                let (_, mag) = ggufReferenceDot(try m.dequantizeRow(r), xt)
                XCTAssertEqual(Double(y[t * 576 + r]), Double(single[r]), accuracy: 4e-6 * mag + 1e-6)
            }
        }
        XCTAssertThrowsError(try m.matmul([Float](repeating: 0, count: 575), count: 1))
    }
}
