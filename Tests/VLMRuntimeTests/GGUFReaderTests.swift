import Foundation
import XCTest
@testable import VLMRuntime

/// The SmolLM2 GGUF read back exactly as the goldens' index.json describes it.
final class GGUFReaderTests: XCTestCase {
    private func ggufIndex() throws -> [String: Any] {
        guard let g = try GGUFFixtures.index()["gguf"] as? [String: Any] else { throw XCTSkip("index.json has no gguf section") }
        return g
    }

    func testHeaderAlignmentAndDataOffsetMatchTheGoldens() throws {
        let file = try GGUFFixtures.model()
        let g = try ggufIndex()
        XCTAssertEqual(file.fileSize, g["bytes"] as? Int)
        XCTAssertEqual(Int(file.version), g["version"] as? Int)
        XCTAssertEqual(file.metadata.count, g["n_kv"] as? Int)
        XCTAssertEqual(file.tensors.count, g["n_tensors"] as? Int)
        XCTAssertEqual(file.alignment, g["alignment"] as? Int)
        XCTAssertNil(file.metadata["general.alignment"], "the fixture file has no alignment key")
        XCTAssertEqual(file.dataSectionOffset, g["data_section_offset"] as? Int)
        XCTAssertEqual(file.dataSectionOffset, 1_785_664)
        XCTAssertEqual(file.tensorTypeCounts, g["tensor_type_counts"] as? [String: Int])
    }

    func testEveryMetadataKeyHasTheGoldenTypeAndValueInFileOrder() throws {
        let file = try GGUFFixtures.model()
        let g = try ggufIndex()
        guard let meta = g["metadata"] as? [String: [String: Any]] else { return XCTFail("no metadata in index.json") }
        XCTAssertEqual(Set(file.metadata.keys), Set(meta.keys))

        // index.json lists keys in file order; JSONSerialization forgets order, so recover it from the text.
        let text = try String(contentsOf: GGUFFixtures.goldensDirectory().appendingPathComponent("index.json"), encoding: .utf8)
        let section = text.range(of: "\"metadata\"").map { text[$0.upperBound...] } ?? Substring(text)
        let ordered = meta.keys.sorted {
            (section.range(of: "\"\($0)\"")?.lowerBound ?? section.endIndex) < (section.range(of: "\"\($1)\"")?.lowerBound ?? section.endIndex)
        }
        XCTAssertEqual(file.metadata.keys, ordered)

        for (key, expected) in meta {
            guard let value = file.metadata[key] else { XCTFail("missing \(key)"); continue }
            XCTAssertEqual(value.typeName, expected["type"] as? String, key)
            switch value {
            case let .string(s): XCTAssertEqual(s, expected["value"] as? String, key)
            case let .uint32(v): XCTAssertEqual(Int(v), expected["value"] as? Int, key)
            case let .float32(f): XCTAssertEqual(Double(f), expected["value"] as? Double, key)
            case let .bool(b): XCTAssertEqual(b, expected["value"] as? Bool, key)
            case let .array(a):
                XCTAssertEqual(a.count, expected["length"] as? Int, key)
                let first = expected["first"] as? [Any] ?? []
                let last = expected["last"] as? [Any] ?? []
                switch a {
                case let .string(items):
                    XCTAssertEqual(Array(items.prefix(first.count)), first as? [String], key)
                    XCTAssertEqual(Array(items.suffix(last.count)), last as? [String], key)
                case let .int32(items):
                    XCTAssertEqual(items.prefix(first.count).map { Int($0) }, first as? [Int], key)
                    XCTAssertEqual(items.suffix(last.count).map { Int($0) }, last as? [Int], key)
                    if let counts = expected["value_counts"] as? [String: Int] {
                        let actual = items.reduce(into: [String: Int]()) { $0[String($1), default: 0] += 1 }
                        XCTAssertEqual(actual, counts, key)
                    }
                default:
                    XCTFail("\(key): unexpected array type \(a.elementType)")
                }
            default:
                XCTFail("\(key): unexpected type \(value.typeName)")
            }
        }
    }

    func testTypedAccessorsReadTheArchitectureKeys() throws {
        let m = try GGUFFixtures.model().metadata
        XCTAssertEqual(try m.requireString("general.architecture"), "llama")
        XCTAssertEqual(try m.requireInt("llama.block_count"), 30)
        XCTAssertEqual(try m.requireInt("llama.attention.head_count_kv"), 3)
        XCTAssertEqual(try m.requireFloat("llama.rope.freq_base"), 100_000)
        XCTAssertEqual(try m.requireFloat("llama.attention.layer_norm_rms_epsilon"), Float(1e-5))
        XCTAssertEqual(try m.bool("tokenizer.ggml.add_bos_token"), false)
        XCTAssertNil(try m.int("llama.rope.scaling.factor"))
        XCTAssertThrowsError(try m.int("general.architecture")) { error in
            guard case GGUFError.typeMismatch(_, "general.architecture", _, "STRING")? = error as? GGUFError else {
                return XCTFail("\(error)")
            }
        }
        XCTAssertThrowsError(try m.requireString("general.missing")) { error in
            XCTAssertEqual(error as? GGUFError, .missingKey(file: m.file, key: "general.missing"))
        }
    }

    func testTensorListMatchesTheGoldensExactlyInFileOrder() throws {
        let file = try GGUFFixtures.model()
        guard let list = try ggufIndex()["tensor_list"] as? [[String: Any]] else { return XCTFail("no tensor_list") }
        XCTAssertEqual(file.tensors.count, list.count)
        for (t, e) in zip(file.tensors, list) {
            XCTAssertEqual(t.name, e["name"] as? String)
            XCTAssertEqual(t.type.name, e["type"] as? String, t.name)
            XCTAssertEqual(t.dimensions, e["ne"] as? [Int], t.name)
            XCTAssertEqual(t.offset, e["offset_in_data"] as? Int, t.name)
            XCTAssertEqual(t.absoluteOffset, e["file_offset"] as? Int, t.name)
            XCTAssertEqual(t.byteCount, e["n_bytes"] as? Int, t.name)
        }
        let embd = try XCTUnwrap(file.tensorInfo(named: "token_embd.weight"))
        XCTAssertEqual(embd.rowLength, 576)
        XCTAssertEqual(embd.rowCount, 49_152)
        XCTAssertEqual(embd.rowBytes, 612)
        XCTAssertNil(file.tensorInfo(named: "output.weight"), "the output layer is tied to token_embd")
        XCTAssertThrowsError(try file.tensor(named: "output.weight")) { error in
            XCTAssertEqual(error as? GGUFError, .tensorNotFound(file: file.name, tensor: "output.weight"))
        }
    }

    func testTensorBytesAreViewsIntoTheMappedFile() throws {
        let file = try GGUFFixtures.model()
        let t = try file.tensor(named: "blk.0.ffn_down.weight")
        XCTAssertEqual(t.bytes.count, 552_960)
        XCTAssertEqual(t.bytes.baseAddress, file.storage.base + 31_868_992)
        let m = try t.matrix()
        XCTAssertEqual(m.rows, 576)
        XCTAssertEqual(m.columns, 1536)
        XCTAssertEqual(m.type, .q4_1)
    }
}
