import Foundation
import XCTest
@testable import VLMRuntime

/// Dequantisation is bit-exact with ggml: against the SmolLM2 goldens (Q8_0, Q4_1), against
/// checksums from gguf-py 0.19.0 for the formats the file does not use, and against literal
/// scalar ports of ggml's C.
final class GGUFDequantTests: XCTestCase {
    private static let goldenTensors: [(name: String, type: GGMLType, columns: Int, fileOffset: Int)] = [
        ("token_embd.weight", .q8_0, 576, 1_785_664),
        ("blk.0.attn_q.weight", .q4_1, 576, 33_806_656),
        ("blk.0.ffn_down.weight", .q4_1, 1536, 31_868_992),
    ]

    private func assertBitwiseEqual(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let diffs = zip(a, b).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }
        if let first = diffs.first {
            XCTFail("\(what): \(diffs.count) values differ, first at \(first.offset): \(first.element.0) vs \(first.element.1)",
                    file: file, line: line)
        }
    }

    func testGoldenRawBlocksDequantiseBitExactlyWithoutTheModelFile() throws {
        let g = try GGUFFixtures.goldens()
        for t in Self.goldenTensors {
            let raw = g.ints("raw.\(t.name).rows0_63").map { UInt8(truncatingIfNeeded: $0) }
            let expected = g.floats("dequant.\(t.name).rows0_63")
            XCTAssertEqual(expected.count, 64 * t.columns, t.name)
            let storage = GGUFStorage(copying: raw)
            let m = try QuantizedMatrix(type: t.type, rows: 64, columns: t.columns, bytes: storage.buffer, owner: storage, name: t.name)
            assertBitwiseEqual(try m.dequantizeAll(), expected, t.name)
            assertBitwiseEqual(GGMLScalarReference.dequantize(t.type, raw, count: expected.count), expected, "scalar reference \(t.name)")
        }
    }

    func testModelTensorsHoldTheGoldenBlocksAndDequantiseToTheGoldenValues() throws {
        let file = try GGUFFixtures.model()
        let g = try GGUFFixtures.goldens()
        for t in Self.goldenTensors {
            let tensor = try file.tensor(named: t.name)
            XCTAssertEqual(tensor.info.absoluteOffset, t.fileOffset, t.name)
            let raw = g.ints("raw.\(t.name).rows0_63").map { UInt8(truncatingIfNeeded: $0) }
            XCTAssertEqual(Array(tensor.bytes.prefix(raw.count)), raw, t.name)
            let m = try tensor.matrix()
            var rows: [Float] = []
            for r in 0..<64 { rows += try m.dequantizeRow(r) }
            assertBitwiseEqual(rows, g.floats("dequant.\(t.name).rows0_63"), t.name)
        }
    }

    func testEveryModelTensorDequantisesLikeTheScalarReference() throws {
        let file = try GGUFFixtures.model()
        for info in file.tensors {
            let tensor = try file.tensor(named: info.name)
            let m = try tensor.matrix()
            // All of a small tensor; first, last and a middle row of a large one (debug builds are slow).
            let rows = m.rows <= 4 ? Array(0..<m.rows) : [0, m.rows / 2 + 1, m.rows - 1]
            for r in rows {
                let raw = Array(tensor.bytes[(r * m.rowBytes)..<((r + 1) * m.rowBytes)])
                assertBitwiseEqual(try m.dequantizeRow(r), GGMLScalarReference.dequantize(m.type, raw, count: m.columns),
                                   "\(info.name) row \(r)")
            }
        }
        let norm = try file.tensor(named: "output_norm.weight")
        let values = try norm.dequantized()
        XCTAssertEqual(values.count, 576)
        XCTAssertEqual(values, norm.bytes.withMemoryRebound(to: Float.self) { Array($0) })
    }

    /// FNV-1a of the Float32 bytes gguf-py 0.19.0's `quants.dequantize` returns for 4096 values of
    /// random blocks (SplitMix64 seed 0xA55A0000 + type id, f16 scales forced finite).
    private static let ggufPyChecksums: [(GGMLType, UInt64)] = [
        (.q4_0, 0x1c0a_5167_a790_0f72),
        (.q4_1, 0x84b0_afe9_b6ca_8918),
        (.q8_0, 0x5d3e_1b58_636f_46e4),
        (.q4_K, 0x170e_a191_21e7_2516),
        (.q6_K, 0x4662_1362_2243_8cca),
        (.f16, 0x5434_74a5_69ec_f954),
        (.bf16, 0x197f_e39a_2251_dcd5),
    ]

    func testEverySupportedFormatMatchesGGUFPyBitForBit() throws {
        for (type, checksum) in Self.ggufPyChecksums {
            let raw = ggufRandomBlocks(type, elements: 4096, seed: 0xA55A_0000 + UInt64(type.rawValue))
            let storage = GGUFStorage(copying: raw)
            let columns = type.blockSize == 256 ? 1024 : 512
            let m = try QuantizedMatrix(type: type, rows: 4096 / columns, columns: columns, bytes: storage.buffer,
                                        owner: storage, name: type.name)
            let values = try m.dequantizeAll()
            XCTAssertEqual(ggufFNV1a(floats: values), checksum, "\(type) differs from gguf-py")
            assertBitwiseEqual(values, GGMLScalarReference.dequantize(type, raw, count: 4096), "\(type) vs scalar reference")
        }
    }

    func testF32TensorsAreReadAsStored() throws {
        var g = GGUFTestRNG(seed: 3)
        let values = (0..<96).map { _ in g.float(scale: 1000) }
        var w = GGUFWriter()
        try w.addTensor(name: "v", dimensions: [32, 3], floats: values)
        let file = try GGUFFile(bytes: w.serialize())
        XCTAssertEqual(try file.tensor(named: "v").dequantized(), values)
    }

    func testHalfToFloatIsExactForAllSixtyFiveThousandPatterns() {
        for bits in 0...UInt16.max {
            let ours = HalfFloat.float(fromHalfBits: bits)
            let swift = Float(Float16(bitPattern: bits))
            if swift.isNaN {
                XCTAssertTrue(ours.isNaN, "\(bits)")
            } else {
                XCTAssertEqual(ours.bitPattern, swift.bitPattern, "half bits \(bits)")
            }
        }
        // The 8-lane version agrees with the scalar one.
        for start in stride(from: 0, to: 65_536, by: 8) {
            let lanes = SIMD8<UInt32>((0..<8).map { UInt32(start + $0) })
            let v = HalfFloat.float(fromHalfBitsInLanes: lanes)
            for i in 0..<8 where !v[i].isNaN {
                XCTAssertEqual(v[i].bitPattern, HalfFloat.float(fromHalfBits: UInt16(lanes[i])).bitPattern)
            }
        }
    }

    func testFloatToHalfRoundsToNearestEvenLikeTheHardware() {
        var g = GGUFTestRNG(seed: 11)
        var samples: [Float] = [0, -0, 65504, 65519.99, 65520, -65520, 1e-8, 2.98e-8, 5.96e-8, 6.1e-5, 6.103515625e-05,
                                .infinity, -.infinity, .greatestFiniteMagnitude, .leastNonzeroMagnitude, 1.00048828125,
                                1.000732421875, 2049, 2051]
        for _ in 0..<200_000 { samples.append(Float(bitPattern: UInt32(truncatingIfNeeded: g.next()))) }
        for f in samples where !f.isNaN {
            XCTAssertEqual(HalfFloat.halfBits(from: f), Float16(f).bitPattern, "\(f) (bits \(String(f.bitPattern, radix: 16)))")
        }
        XCTAssertTrue(HalfFloat.float(fromHalfBits: HalfFloat.halfBits(from: .nan)).isNaN)
    }
}
