import Foundation
import XCTest
@testable import VLMRuntime

/// A small valid GGUF written here, read back, and then broken in every way the reader must catch:
/// each corruption ends in a typed error naming the problem, never a crash or a huge allocation.
final class GGUFCorruptFileTests: XCTestCase {
    private func validWriter(version: UInt32 = 3, alignment: UInt32? = nil) throws -> GGUFWriter {
        var meta = GGUFMetadata(entries: [
            ("general.architecture", .string("llama")),
            ("test.u8", .uint8(200)), ("test.i8", .int8(-100)), ("test.u16", .uint16(60_000)), ("test.i16", .int16(-30_000)),
            ("test.u32", .uint32(4_000_000_000)), ("test.i32", .int32(-2_000_000_000)), ("test.f32", .float32(0.1)),
            ("test.bool", .bool(true)), ("test.string", .string("héllo ✓")), ("test.u64", .uint64(.max)),
            ("test.i64", .int64(.min)), ("test.f64", .float64(-1e300)),
            ("test.strings", .array(.string(["a", "", "Ġb c"]))),
            ("test.nested", .array(.array([.int32([1, 2, 3]), .string(["x"]), .array([.bool([true, false])]), .float64([])]))),
            ("test.empty", .array(.uint8([]))),
        ])
        if let alignment { meta.set("general.alignment", .uint32(alignment)) }
        var w = GGUFWriter(version: version, metadata: meta)
        try w.addTensor(name: "norm", dimensions: [32], floats: (0..<32).map { Float($0) })
        try w.addTensor(name: "q4", dimensions: [64, 2], type: .q4_1, data: ggufRandomBlocks(.q4_1, elements: 128, seed: 1))
        try w.addTensor(name: "q8", dimensions: [32, 3], type: .q8_0, data: ggufRandomBlocks(.q8_0, elements: 96, seed: 2))
        return w
    }

    private func expectError(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line,
                             _ check: (GGUFError) -> Bool) {
        do {
            _ = try GGUFFile(bytes: bytes, name: "bad.gguf")
            XCTFail("corrupt file was accepted", file: file, line: line)
        } catch let error as GGUFError {
            XCTAssertTrue(check(error), "unexpected error: \(error)", file: file, line: line)
            XCTAssertTrue(error.description.hasPrefix("bad.gguf: "), "error should name the file: \(error)", file: file, line: line)
        } catch {
            XCTFail("untyped error \(error)", file: file, line: line)
        }
    }

    /// Header + one key, hand-assembled so counts and lengths can lie.
    private func header(tensors: UInt64 = 0, kvs: UInt64 = 1, version: UInt32 = 3) -> [UInt8] {
        var b = Array("GGUF".utf8)
        GGUFWriter.append(version, to: &b)
        GGUFWriter.append(tensors, to: &b)
        GGUFWriter.append(kvs, to: &b)
        return b
    }

    func testAValidFileWithEveryValueTypeRoundTrips() throws {
        for version: UInt32 in [2, 3] {
            for alignment: UInt32? in [nil, 64] {
                let w = try validWriter(version: version, alignment: alignment)
                let path = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-roundtrip-\(version).gguf").path
                try w.write(to: path)
                defer { try? FileManager.default.removeItem(atPath: path) }
                let file = try GGUFFile(path: path)
                XCTAssertEqual(file.version, version)
                XCTAssertEqual(file.metadata, w.metadata)
                XCTAssertEqual(file.metadata.keys, w.metadata.keys)
                XCTAssertEqual(file.alignment, Int(alignment ?? 32))
                XCTAssertEqual(file.dataSectionOffset % file.alignment, 0)
                XCTAssertEqual(file.tensors.map(\.name), ["norm", "q4", "q8"])
                XCTAssertEqual(file.tensors.map(\.dimensions), [[32], [64, 2], [32, 3]])
                XCTAssertEqual(file.tensors.map(\.type), [.f32, .q4_1, .q8_0])
                for t in file.tensors { XCTAssertEqual(t.offset % file.alignment, 0) }
                XCTAssertEqual(Array(try file.tensor(named: "q4").bytes), w.tensors[1].data)
                XCTAssertEqual(try file.tensor(named: "norm").dequantized(), (0..<32).map { Float($0) })
                XCTAssertEqual(file.metadata["test.u64"], .uint64(.max))
            }
        }
        // UInt64.max does not fit Int: the integer accessor says so instead of wrapping.
        XCTAssertThrowsError(try GGUFFile(bytes: try validWriter().serialize()).metadata.int("test.u64"))
    }

    func testAlignmentOneAllowsUnalignedFloatData() throws {
        var w = GGUFWriter(metadata: GGUFMetadata(entries: [("general.alignment", .uint32(1)), ("k", .string("abc"))]))
        try w.addTensor(name: "a", dimensions: [3], floats: [1, 2, 3])
        try w.addTensor(name: "m", dimensions: [2, 2], floats: [1, 2, 3, 4])
        let file = try GGUFFile(bytes: w.serialize())
        XCTAssertEqual(file.alignment, 1)
        let m = try file.matrix(named: "m")
        XCTAssertNotEqual(Int(bitPattern: m.bytes.baseAddress) % 4, 0, "the point of the test: F32 data off a 4-byte boundary")
        XCTAssertEqual(try m.dequantizeAll(), [1, 2, 3, 4])
        XCTAssertEqual(try m.matvec([1, 1]), [3, 7])
        XCTAssertEqual(try m.matmul([1, 1, 1, 0], count: 2), [3, 7, 1, 3])
    }

    func testBadMagicIsRejected() throws {
        var b = try validWriter().serialize()
        b[0] = 0x4C  // "LGUF"
        expectError(b) { if case .badMagic(_, let found) = $0 { return found == Array("LGUF".utf8) }; return false }
        expectError([]) { if case .truncated(_, "magic", 0, 4, 0) = $0 { return true }; return false }
        expectError(Array("GGU".utf8)) { if case .truncated = $0 { return true }; return false }
    }

    func testUnsupportedVersionsAreRejected() throws {
        for v: UInt32 in [0, 1, 4, 0xFFFF_FFFF] {
            var b = try validWriter().serialize()
            b.replaceSubrange(4..<8, with: withUnsafeBytes(of: v.littleEndian) { Array($0) })
            expectError(b) { $0 == .unsupportedVersion(file: "bad.gguf", version: v) }
        }
    }

    func testATruncatedTensorIsNamed() throws {
        let full = try validWriter().serialize()
        let file = try GGUFFile(bytes: full)
        let q8 = try XCTUnwrap(file.tensorInfo(named: "q8"))
        // Cut the file in the middle of the last tensor.
        expectError(Array(full.prefix(q8.absoluteOffset + 50))) { error in
            if case let .tensorOutOfBounds(_, tensor, _, bytes, _) = error { return tensor == "q8" && bytes == 102 }
            return false
        }
        // Cut inside the tensor infos: the header itself is short.
        expectError(Array(full.prefix(file.dataSectionOffset - 40))) { if case .truncated = $0 { return true }; return false }
        // Cut before the data section: the first tensor is out of bounds.
        expectError(Array(full.prefix(file.dataSectionOffset))) { error in
            if case let .tensorOutOfBounds(_, tensor, _, _, 0) = error { return tensor == "norm" }
            return false
        }
    }

    func testAnUnknownTensorTypeIsNamed() throws {
        for raw: UInt32 in [4, 31, 42, 0xFFFF_FFFF] {
            var b = header(tensors: 1, kvs: 0)
            GGUFWriter.append(string: "weird", to: &b)
            GGUFWriter.append(UInt32(2), to: &b)
            GGUFWriter.append(UInt64(32), to: &b)
            GGUFWriter.append(UInt64(2), to: &b)
            GGUFWriter.append(raw, to: &b)
            GGUFWriter.append(UInt64(0), to: &b)
            b += [UInt8](repeating: 0, count: 256)
            expectError(b) { $0 == .unknownTensorType(file: "bad.gguf", tensor: "weird", rawType: raw) }
        }
    }

    func testMetadataThatClaimsMoreBytesThanExistIsRejectedWithoutAllocating() throws {
        // A key whose string value claims 2^62 bytes.
        var b = header()
        GGUFWriter.append(string: "general.name", to: &b)
        GGUFWriter.append(GGUFValueType.string.rawValue, to: &b)
        GGUFWriter.append(UInt64(1) << 62, to: &b)
        b += Array("short".utf8)
        expectError(b) { if case let .truncated(_, context, _, needed, 5) = $0 { return context == "value of 'general.name'" && needed == 1 << 62 }; return false }

        // A key name longer than the file.
        var k = header()
        GGUFWriter.append(UInt64(1000), to: &k)
        k += Array("general".utf8)
        expectError(k) { if case .truncated(_, "metadata key #0", _, 1000, _) = $0 { return true }; return false }

        // A UINT64 value cut in half.
        var u = header()
        GGUFWriter.append(string: "n", to: &u)
        GGUFWriter.append(GGUFValueType.uint64.rawValue, to: &u)
        u += [1, 2, 3, 4]
        expectError(u) { if case .truncated(_, "value of 'n'", _, 8, 4) = $0 { return true }; return false }
    }

    func testAbsurdCountsAreRejectedBeforeAllocating() throws {
        // An array claiming 2^60 UINT32s, 2^61 strings, and an absurd nested array.
        for (elementType, count) in [(GGUFValueType.uint32, UInt64(1) << 60), (.string, UInt64(1) << 61),
                                     (.array, UInt64.max), (.uint8, UInt64(100))] {
            var b = header()
            GGUFWriter.append(string: "tokenizer.ggml.tokens", to: &b)
            GGUFWriter.append(GGUFValueType.array.rawValue, to: &b)
            GGUFWriter.append(elementType.rawValue, to: &b)
            GGUFWriter.append(count, to: &b)
            b += [UInt8](repeating: 7, count: 64)
            expectError(b) { error in
                if case let .countTooLarge(_, context, n, left) = error {
                    return context == "array 'tokenizer.ggml.tokens'" && n == count && left == 64
                }
                return false
            }
        }
        // Key/value and tensor counts far beyond the file.
        expectError(header(kvs: UInt64.max)) { if case .countTooLarge(_, "metadata key/value count", .max, 0) = $0 { return true }; return false }
        expectError(header(tensors: 1 << 40, kvs: 0)) { if case .countTooLarge(_, "tensor count", 1 << 40, 0) = $0 { return true }; return false }
    }

    func testMalformedValuesAndKeysAreRejected() throws {
        func oneKey(_ key: String, type: UInt32, payload: [UInt8]) -> [UInt8] {
            var b = header()
            GGUFWriter.append(string: key, to: &b)
            GGUFWriter.append(type, to: &b)
            return b + payload
        }
        expectError(oneKey("k", type: 13, payload: [0, 0, 0, 0])) { $0 == .unknownValueType(file: "bad.gguf", key: "k", rawType: 13) }
        expectError(oneKey("k", type: 7, payload: [2])) { $0 == .invalidBool(file: "bad.gguf", key: "k", byte: 2) }
        var arr: [UInt8] = []
        GGUFWriter.append(UInt32(99), to: &arr)
        GGUFWriter.append(UInt64(1), to: &arr)
        expectError(oneKey("k", type: 9, payload: arr)) { $0 == .unknownValueType(file: "bad.gguf", key: "k", rawType: 99) }
        var badUTF8: [UInt8] = []
        GGUFWriter.append(UInt64(2), to: &badUTF8)
        badUTF8 += [0xC3, 0x28]
        expectError(oneKey("k", type: 8, payload: badUTF8)) { if case .invalidUTF8(_, "value of 'k'") = $0 { return true }; return false }

        // Arrays nested past the limit: each level is (ARRAY, count 1).
        var deep: [UInt8] = []
        for _ in 0...GGUFFile.maximumArrayNesting + 1 {
            GGUFWriter.append(GGUFValueType.array.rawValue, to: &deep)
            GGUFWriter.append(UInt64(1), to: &deep)
        }
        expectError(oneKey("deep", type: 9, payload: deep + [UInt8](repeating: 0, count: 16))) {
            $0 == .nestingTooDeep(file: "bad.gguf", key: "deep", limit: GGUFFile.maximumArrayNesting)
        }

        // The same key twice.
        var dup = header(kvs: 2)
        for _ in 0..<2 {
            GGUFWriter.append(string: "a", to: &dup)
            GGUFWriter.append(GGUFValueType.uint8.rawValue, to: &dup)
            dup.append(1)
        }
        dup += [UInt8](repeating: 0, count: 16)
        expectError(dup) { $0 == .duplicateKey(file: "bad.gguf", key: "a") }
    }

    func testInvalidAlignmentIsRejected() throws {
        for bad: GGUFValue in [.uint32(0), .uint32(48), .string("32"), .int32(-32)] {
            var w = try validWriter()
            w.metadata.set("general.alignment", bad)
            var bytes = w.serialize()
            bytes += [UInt8](repeating: 0, count: 256)
            expectError(bytes) { if case .invalidAlignment = $0 { return true }; return false }
        }
    }

    func testBadTensorInfosAreRejected() throws {
        func oneTensor(name: String = "t", dims: [UInt64], type: GGMLType = .f32, offset: UInt64 = 0,
                       data: Int = 4096, second: (String, UInt64)? = nil) -> [UInt8] {
            var b = header(tensors: second == nil ? 1 : 2, kvs: 0)
            for (n, off) in [(name, offset)] + (second.map { [$0] } ?? []) {
                GGUFWriter.append(string: n, to: &b)
                GGUFWriter.append(UInt32(dims.count), to: &b)
                for d in dims { GGUFWriter.append(d, to: &b) }
                GGUFWriter.append(type.rawValue, to: &b)
                GGUFWriter.append(off, to: &b)
            }
            while b.count % 32 != 0 { b.append(0) }
            return b + [UInt8](repeating: 0, count: data)
        }
        XCTAssertNoThrow(try GGUFFile(bytes: oneTensor(dims: [32, 4])))
        expectError(oneTensor(dims: [1, 1, 1, 1, 1])) { if case .invalidTensorShape(_, "t", _) = $0 { return true }; return false }
        expectError(oneTensor(dims: [48], type: .q4_1)) { if case .invalidTensorShape(_, "t", _) = $0 { return true }; return false }
        expectError(oneTensor(dims: [1 << 32, 1 << 32])) { if case .invalidTensorShape(_, "t", _) = $0 { return true }; return false }
        expectError(oneTensor(dims: [UInt64.max])) { if case .invalidTensorShape(_, "t", _) = $0 { return true }; return false }
        expectError(oneTensor(dims: [1 << 40])) { if case .tensorOutOfBounds(_, "t", 0, _, 4096) = $0 { return true }; return false }
        expectError(oneTensor(dims: [32], offset: 16)) { $0 == .misalignedTensor(file: "bad.gguf", tensor: "t", offset: 16, alignment: 32) }
        expectError(oneTensor(dims: [32], offset: UInt64.max - 31)) { if case .tensorOutOfBounds(_, "t", _, 128, 4096) = $0 { return true }; return false }
        expectError(oneTensor(dims: [64], second: ("u", 128))) { $0 == .overlappingTensors(file: "bad.gguf", first: "t", second: "u") }
        expectError(oneTensor(dims: [64], second: ("t", 512))) { $0 == .duplicateTensor(file: "bad.gguf", tensor: "t") }
        XCTAssertNoThrow(try GGUFFile(bytes: oneTensor(dims: [64], second: ("u", 256))))
    }

    func testEveryByteFlipAndTruncationOfAValidFileFailsCleanly() throws {
        // No crash and no trap for any single-byte corruption or any truncation of the header.
        let good = try validWriter().serialize()
        let headerEnd = try GGUFFile(bytes: good).dataSectionOffset
        for i in 0..<headerEnd {
            var b = good
            b[i] ^= 0xFF
            _ = try? GGUFFile(bytes: b)
            _ = try? GGUFFile(bytes: Array(good.prefix(i)))
        }
    }

    func testMissingFilesAndDirectoriesAreTypedErrors() {
        XCTAssertThrowsError(try GGUFFile(path: "/nonexistent/model.gguf")) { error in
            guard case GGUFError.cannotOpen(file: "/nonexistent/model.gguf", _)? = error as? GGUFError else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try GGUFFile(path: NSTemporaryDirectory())) { error in
            guard case GGUFError.cannotOpen(_, "not a regular file")? = error as? GGUFError else { return XCTFail("\(error)") }
        }
    }
}
