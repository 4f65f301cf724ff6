import Foundation
import AssayTestSupport
import XCTest
@testable import VLMRuntime

/// Where the SmolLM2 goldens and the model file are, and small readers for them.
enum GGUFFixtures {
    /// The repository root: this file is Tests/VLMRuntimeTests/GGUFTestSupport.swift.
    static let repoRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// ../shared/fixtures/goldens/smollm2_135m_q4_1, or a skip when ../shared is absent.
    static func goldensDirectory() throws -> URL {
        let dir = repoRoot.appendingPathComponent("../shared/fixtures/goldens/smollm2_135m_q4_1").standardized
        guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("goldens.safetensors").path) else {
            throw XCTSkip("SmolLM2 goldens not found at \(dir.path) (../shared is absent)")
        }
        return dir
    }

    /// The SmolLM2 GGUF: $ASSAY_SMOLLM2_GGUF, else the model cache; a skip when neither exists.
    static func modelPath() throws -> String {
        try AssayTestSupport.Fixtures.smolLM2Path()
    }

    private static let file = ProcessOnce<GGUFFile>()
    private static let runtimeModel = ProcessOnce<VLMModel>()

    /// The model file, opened once per test process.
    static func model() throws -> GGUFFile {
        try file.value { try GGUFFile(path: modelPath()) }
    }

    /// The model loaded by the runtime (fp32 activation path, the goldens' path), once per process.
    static func runtime() throws -> VLMModel {
        try runtimeModel.value { try VLMModel.load(path: modelPath()) }
    }

    static func index() throws -> [String: Any] {
        let data = try Data(contentsOf: goldensDirectory().appendingPathComponent("index.json"))
        guard let obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw XCTSkip("index.json is not an object")
        }
        return obj
    }

    static func goldens() throws -> GGUFGoldenTensors {
        try GGUFGoldenTensors(url: goldensDirectory().appendingPathComponent("goldens.safetensors"))
    }
}

/// A value made once per test process and shared by the tests that need it.
final class ProcessOnce<T>: @unchecked Sendable {  // @unchecked: `stored` is only touched under `lock`
    private var stored: T?
    private let lock = NSLock()

    func value(_ make: () throws -> T) throws -> T {
        lock.lock()
        defer { lock.unlock() }
        if let stored { return stored }
        let made = try make()
        stored = made
        return made
    }
}

/// A minimal safetensors reader for the goldens (F32 and I32 only), independent of the runtime's.
struct GGUFGoldenTensors {
    struct Entry { let dtype: String; let shape: [Int]; let start: Int; let end: Int }
    let data: Data
    let entries: [String: Entry]
    let base: Int

    init(url: URL) throws {
        data = try Data(contentsOf: url)
        let n = data.prefix(8).withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self)) }
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any] ?? [:]
        var e: [String: Entry] = [:]
        for (k, v) in header where k != "__metadata__" {
            guard let d = v as? [String: Any], let dtype = d["dtype"] as? String, let shape = d["shape"] as? [Int],
                  let off = d["data_offsets"] as? [Int] else { continue }
            e[k] = Entry(dtype: dtype, shape: shape, start: off[0], end: off[1])
        }
        entries = e
        base = 8 + n
    }

    func shape(_ name: String) -> [Int] { entries[name]?.shape ?? [] }

    func floats(_ name: String) -> [Float] {
        guard let e = entries[name], e.dtype == "F32" else { return [] }
        return data.subdata(in: (base + e.start)..<(base + e.end)).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    func ints(_ name: String) -> [Int32] {
        guard let e = entries[name], e.dtype == "I32" else { return [] }
        return data.subdata(in: (base + e.start)..<(base + e.end)).withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
    }
}

/// SplitMix64: the same sequence as the Python generator that produced the embedded gguf-py
/// checksums, so both sides build identical random blocks.
struct GGUFTestRNG {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A finite binary16 (sign, any exponent but the inf/NaN one, any mantissa).
    mutating func halfBits() -> UInt16 {
        let r = next()
        return UInt16(truncatingIfNeeded: (r & 0x83FF) | (((r >> 16) % 31) << 10))
    }
    /// A Float in [-0.5, 0.5) · scale, computed exactly as the Python side does in float32.
    mutating func float(scale: Float) -> Float {
        (Float(next() >> 40) / 16_777_216 - 0.5) * scale
    }
}

/// FNV-1a over bytes: a compact fingerprint for comparing large outputs with an embedded value.
func ggufFNV1a<S: Sequence>(_ bytes: S) -> UInt64 where S.Element == UInt8 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

func ggufFNV1a(floats: [Float]) -> UInt64 {
    floats.withUnsafeBytes { ggufFNV1a($0) }
}

/// Random blocks of a ggml type with finite f16 scales: the Python generator's layout.
func ggufRandomBlocks(_ type: GGMLType, elements: Int, seed: UInt64) -> [UInt8] {
    var g = GGUFTestRNG(seed: seed)
    var out: [UInt8] = []
    switch type {
    case .f16:
        for _ in 0..<elements { GGUFWriter.append(g.halfBits(), to: &out) }
        return out
    case .bf16:
        for _ in 0..<elements {
            var b = UInt16(truncatingIfNeeded: g.next() & 0xFFFF)
            if b & 0x7F80 == 0x7F80 { b ^= 0x4000 }
            GGUFWriter.append(b, to: &out)
        }
        return out
    default: break
    }
    let halves: [Int]
    switch type {
    case .q4_0, .q8_0: halves = [0]
    case .q4_1, .q4_K: halves = [0, 2]
    case .q6_K: halves = [208]
    default: halves = []
    }
    for _ in 0..<(elements / type.blockSize) {
        var block = (0..<type.blockBytes).map { _ in UInt8(truncatingIfNeeded: g.next() & 0xFF) }
        for off in halves {
            let h = g.halfBits()
            block[off] = UInt8(truncatingIfNeeded: h)
            block[off + 1] = UInt8(truncatingIfNeeded: h >> 8)
        }
        out += block
    }
    return out
}

/// Literal scalar ports of ggml's reference C (ggml-quants.c), kept deliberately naive and separate
/// from the SIMD library code they check.
enum GGMLScalarReference {
    static func f16(_ b: [UInt8], _ o: Int) -> Float {
        Float(Float16(bitPattern: UInt16(b[o]) | UInt16(b[o + 1]) << 8))
    }

    static func dequantize(_ type: GGMLType, _ b: [UInt8], count: Int) -> [Float] {
        var y = [Float](repeating: 0, count: count)
        switch type {
        case .f32:
            for i in 0..<count {
                y[i] = Float(bitPattern: UInt32(b[4*i]) | UInt32(b[4*i+1]) << 8 | UInt32(b[4*i+2]) << 16 | UInt32(b[4*i+3]) << 24)
            }
        case .f16:
            for i in 0..<count { y[i] = f16(b, 2 * i) }
        case .bf16:
            for i in 0..<count { y[i] = Float(bitPattern: (UInt32(b[2*i]) | UInt32(b[2*i+1]) << 8) << 16) }
        case .q4_0:
            for i in 0..<(count / 32) {
                let o = i * 18, d = f16(b, o)
                for j in 0..<16 {
                    y[i*32 + j] = Float(Int(b[o + 2 + j] & 0x0F) - 8) * d
                    y[i*32 + j + 16] = Float(Int(b[o + 2 + j] >> 4) - 8) * d
                }
            }
        case .q4_1:
            for i in 0..<(count / 32) {
                let o = i * 20, d = f16(b, o), m = f16(b, o + 2)
                for j in 0..<16 {
                    y[i*32 + j] = Float(b[o + 4 + j] & 0x0F) * d + m
                    y[i*32 + j + 16] = Float(b[o + 4 + j] >> 4) * d + m
                }
            }
        case .q8_0:
            for i in 0..<(count / 32) {
                let o = i * 34, d = f16(b, o)
                for j in 0..<32 { y[i*32 + j] = Float(Int8(bitPattern: b[o + 2 + j])) * d }
            }
        case .q4_K:
            for i in 0..<(count / 256) {
                let o = i * 144, d = f16(b, o), dmin = f16(b, o + 2)
                let s = Array(b[(o + 4)..<(o + 16)])
                func scaleMin(_ j: Int) -> (UInt8, UInt8) {
                    j < 4 ? (s[j] & 63, s[j + 4] & 63)
                          : ((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
                }
                var q = o + 16, yi = i * 256, is_ = 0
                for _ in stride(from: 0, to: 256, by: 64) {
                    let (sc1, m1) = scaleMin(is_), (sc2, m2) = scaleMin(is_ + 1)
                    let d1 = d * Float(sc1), mm1 = dmin * Float(m1)
                    let d2 = d * Float(sc2), mm2 = dmin * Float(m2)
                    for l in 0..<32 { y[yi] = d1 * Float(b[q + l] & 0xF) - mm1; yi += 1 }
                    for l in 0..<32 { y[yi] = d2 * Float(b[q + l] >> 4) - mm2; yi += 1 }
                    q += 32; is_ += 2
                }
            }
        case .q6_K:
            for i in 0..<(count / 256) {
                let o = i * 210, d = f16(b, o + 208)
                var ql = o, qh = o + 128, sc = o + 192, yi = i * 256
                for _ in stride(from: 0, to: 256, by: 128) {
                    for l in 0..<32 {
                        let is_ = l / 16
                        let q1 = Int(Int8(bitPattern: (b[ql + l] & 0xF) | (((b[qh + l] >> 0) & 3) << 4))) - 32
                        let q2 = Int(Int8(bitPattern: (b[ql + l + 32] & 0xF) | (((b[qh + l] >> 2) & 3) << 4))) - 32
                        let q3 = Int(Int8(bitPattern: (b[ql + l] >> 4) | (((b[qh + l] >> 4) & 3) << 4))) - 32
                        let q4 = Int(Int8(bitPattern: (b[ql + l + 32] >> 4) | (((b[qh + l] >> 6) & 3) << 4))) - 32
                        func sc8(_ k: Int) -> Float { Float(Int8(bitPattern: b[sc + k])) }
                        y[yi + l] = d * sc8(is_ + 0) * Float(q1)
                        y[yi + l + 32] = d * sc8(is_ + 2) * Float(q2)
                        y[yi + l + 64] = d * sc8(is_ + 4) * Float(q3)
                        y[yi + l + 96] = d * sc8(is_ + 6) * Float(q4)
                    }
                    yi += 128; ql += 64; qh += 32; sc += 8
                }
            }
        default:
            break
        }
        return y
    }

    /// `quantize_row_q8_K_ref`, literally.
    static func quantizeQ8_K(_ x: [Float]) -> (d: [Float], qs: [Int8], bsums: [Int16]) {
        var ds: [Float] = [], qs: [Int8] = [], bs: [Int16] = []
        for i in 0..<(x.count / 256) {
            let xb = Array(x[(256 * i)..<(256 * i + 256)])
            var maxV: Float = 0, amax: Float = 0
            for v in xb where abs(v) > amax { amax = abs(v); maxV = v }
            if amax == 0 {
                ds.append(0); qs += [Int8](repeating: 0, count: 256); bs += [Int16](repeating: 0, count: 16)
                continue
            }
            let iscale = -127 / maxV
            var q: [Int8] = []
            for v in xb {
                let val = iscale * v + 12_582_912
                let n = Int32(bitPattern: val.bitPattern & 0x007f_ffff) - 0x0040_0000
                q.append(Int8(min(127, n)))
            }
            for g in 0..<16 { bs.append(Int16(q[(16 * g)..<(16 * g + 16)].reduce(0) { $0 + Int($1) })) }
            qs += q
            ds.append(1 / iscale)
        }
        return (ds, qs, bs)
    }
}

/// The dot product of a dequantised row with x, in Double, plus Σ|w·x| for a relative tolerance.
func ggufReferenceDot(_ w: [Float], _ x: [Float]) -> (value: Double, magnitude: Double) {
    var s = 0.0, m = 0.0
    for i in 0..<w.count { let p = Double(w[i]) * Double(x[i]); s += p; m += abs(p) }
    return (s, m)
}

/// A copy of the GGUF file at `path`, in `directory`, with its metadata changed and its tensors
/// as they were.
func rewriteGGUF(_ path: URL, into directory: URL, _ change: (inout GGUFMetadata) -> Void) throws -> URL {
    let file = try GGUFFile(path: path.path)
    var meta = file.metadata
    change(&meta)
    var writer = GGUFWriter(metadata: meta)
    for t in file.tensors {
        try writer.addTensor(name: t.name, dimensions: t.dimensions, type: t.type, data: Array(try file.tensor(named: t.name).bytes))
    }
    let url = directory.appendingPathComponent("changed.gguf")
    try writer.write(to: url.path)
    return url
}
