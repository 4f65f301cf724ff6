import AssayTestSupport
import Foundation
import XCTest

/// The command-line contract, checked from outside by running the built `assay` binary.
final class CLITests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try Fixtures.temporaryDirectory(for: self)
    }

    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("assay")
    }

    @discardableResult
    func assay(_ arguments: [String], expectFailure: Bool = false, line: UInt = #line) throws -> (stdout: String, stderr: String) {
        let binary = Self.binary
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw XCTSkip("the assay binary is not built next to the tests (\(binary.path))")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = Fixtures.repoRoot
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let result = (String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
        if expectFailure {
            XCTAssertNotEqual(process.terminationStatus, 0, "expected failure: \(arguments)", line: line)
        } else {
            XCTAssertEqual(process.terminationStatus, 0, "assay \(arguments.joined(separator: " ")) failed: \(result.1)", line: line)
        }
        return result
    }

    func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    func testSuitesList() throws {
        let (out, _) = try assay(["suites", "list", "--json"])
        let entries = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]])
        let ids = entries.compactMap { $0["id"] as? String }
        for id in ["blink", "mathvista", "mmmu", "mmstar"] { XCTAssertTrue(ids.contains(id), id) }
        let blink = try XCTUnwrap(entries.first { $0["id"] as? String == "blink" })
        XCTAssertEqual(blink["group"] as? String, "perception")
        XCTAssertEqual(blink["expected_items"] as? Int, 1901)
        XCTAssertNotNil((blink["source"] as? [String: Any])?["md5"])
        XCTAssertTrue(try assay(["suites", "list"]).stdout.contains("mmstar"))
    }

    func testImportScoreMetricsCompareReportOnBLINK() throws {
        let folder = try Fixtures.require("benchmarks/blink")
        let answers = try Fixtures.readJSON(folder.appendingPathComponent("val_answers.json")) as! [String: String]
        let items = directory.appendingPathComponent("blink.jsonl")
        try Fixtures.writeJSONL(answers.keys.sorted().map {
            ["index": $0, "answer": answers[$0]!, "category": $0.dropFirst(4).split(separator: "_").dropLast().joined(separator: "_")]
        }, to: items)
        let db = directory.appendingPathComponent("results/assay.sqlite").path
        for (model, run) in [("GPT4o", "gpt4o"), ("llava_v1.5_7b", "llava7b")] {
            let predictions = try Fixtures.readJSON(folder.appendingPathComponent("saved_val_predictions/\(model).json")) as! [String: String]
            let url = directory.appendingPathComponent("\(run).jsonl")
            try Fixtures.writeJSONL(predictions.keys.sorted().map { ["index": $0, "prediction": predictions[$0]!] }, to: url)
            try assay(["import", "--db", db, "--suite", "blink", "--data", items.path, "--predictions", url.path, "--run", run, "--model", model, "--extracted"])
            try assay(["score", "--db", db, "--run", run])
        }
        let metrics = try json(try assay(["metrics", "--db", db, "--run", "gpt4o", "--json"]).stdout)
        let blink = try XCTUnwrap(metrics["blink"] as? [String: Any])
        XCTAssertEqual(blink["score"] as? Double ?? 0, 60.0411, accuracy: 1e-4)
        XCTAssertEqual(blink["n"] as? Int, 1901)
        XCTAssertEqual(blink["missing"] as? Int, 0)
        XCTAssertEqual(blink["unparsed"] as? Int, 4)  // GPT-4o's four "(Z)" answers
        XCTAssertNotNil((blink["metrics"] as? [String: Any])?["category/Counting"])

        let compare = try json(try assay(["compare", "--db", db, "--base", "llava7b", "--candidate", "gpt4o", "--json"]).stdout)
        let suite = try XCTUnwrap((compare["suites"] as? [String: Any])?["blink"] as? [String: Any])
        let delta = try XCTUnwrap(suite["delta"] as? Double)
        XCTAssertEqual(delta, 60.0411 - 37.1274, accuracy: 1e-3)
        XCTAssertEqual(delta, (suite["candidate"] as! Double) - (suite["base"] as! Double), accuracy: 1e-9)
        let ci = try XCTUnwrap(suite["ci95"] as? [Double])
        XCTAssertTrue(ci[0] <= delta && delta <= ci[1])
        XCTAssertLessThan(try XCTUnwrap(suite["p_value"] as? Double), 0.001)
        XCTAssertEqual(suite["n_paired"] as? Int, 1901)
        XCTAssertEqual(compare["average_delta"] as? Double ?? 0, delta, accuracy: 1e-9)

        let report = directory.appendingPathComponent("out/report.md")
        try assay(["report", "--db", db, "--base", "llava7b", "--runs", "gpt4o", "--out", report.path, "--resamples", "2000"])
        let markdown = try String(contentsOf: report, encoding: .utf8)
        for needle in ["## Runs", "| gpt4o | candidate | GPT4o | replay", "### perception", "| blink |", "![Per-suite deltas](report.svg)",
                       "blink@1", "blink/1", "average delta over 1 suite **+22.91**"] {
            XCTAssertTrue(markdown.contains(needle), "report lacks '\(needle)':\n\(markdown)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent("out/report.svg").path))

        // Without a base: the runs' own scores, intervals and per-category tables.
        let scores = directory.appendingPathComponent("out/scores.md")
        try assay(["report", "--db", db, "--runs", "gpt4o,llava7b", "--out", scores.path, "--resamples", "500"])
        let table = try String(contentsOf: scores, encoding: .utf8)
        for needle in ["| blink | macro accuracy over the 14 subtasks | 60.04 |", "#### blink by category", "| Counting | 49.17 | 40.00 |", "![Scores](scores.svg)"] {
            XCTAssertTrue(table.contains(needle), "scores report lacks '\(needle)':\n\(table)")
        }
    }

    func testErrorsAreReportedWithFileAndLineAndAFailingStatus() throws {
        let items = directory.appendingPathComponent("items.jsonl")
        try Fixtures.writeJSONL([["index": 0, "question": "q", "answer": "A", "category": "c", "l2-category": "d"]], to: items)
        let predictions = directory.appendingPathComponent("p.jsonl")
        try "{\"index\": 0, \"prediction\": \"A\"}\n{oops\n".write(to: predictions, atomically: true, encoding: .utf8)
        let db = directory.appendingPathComponent("a.sqlite").path
        let (_, stderr) = try assay(["import", "--db", db, "--suite", "mmstar", "--data", items.path, "--predictions", predictions.path, "--run", "r"],
                                    expectFailure: true)
        XCTAssertTrue(stderr.contains("\(predictions.path):2:"), stderr)
        let (_, unknown) = try assay(["metrics", "--db", db, "--run", "nope", "--json"], expectFailure: true)
        XCTAssertTrue(unknown.contains("no run named 'nope'"), unknown)
        let (_, suite) = try assay(["import", "--db", db, "--suite", "nosuch", "--data", items.path, "--predictions", predictions.path, "--run", "r"],
                                   expectFailure: true)
        XCTAssertTrue(suite.contains("unknown suite 'nosuch'"), suite)
    }
}

/// `assay generate` on the embedded default GGUF prints the golden greedy tokens.
extension CLITests {
    func testGenerateJSONPrintsTheGoldenGreedyTokensOfTheChatPrompt() throws {
        let path = try Fixtures.smolLM2Path()
        let folder = try Fixtures.require("goldens/smollm2_135m_q4_1")
        let index = try XCTUnwrap(try Fixtures.readJSON(folder.appendingPathComponent("index.json")) as? [String: Any])
        let greedy = try XCTUnwrap((index["prompts"] as? [String: [String: Any]])?["chat"]?["greedy"] as? [String: Any])
        let ids = try XCTUnwrap(greedy["gen_ids"] as? [Int])
        let eos = try XCTUnwrap(greedy["first_eos_index"] as? Int)
        let prompts = try XCTUnwrap(try Fixtures.readJSON(folder.appendingPathComponent("prompts.json")) as? [String: Any])
        let entry = try XCTUnwrap((prompts["prompts"] as? [[String: Any]])?.first { $0["name"] as? String == "chat" })
        let user = try XCTUnwrap((entry["messages"] as? [[String: String]])?.first?["content"])

        let (out, _) = try assay(["generate", "--model-path", path, "--prompt", user, "--temperature", "0", "--json"])
        let result = try json(out)
        XCTAssertEqual(result["token_ids"] as? [Int], Array(ids.prefix(eos + 1)))
        XCTAssertEqual(result["text"] as? String, greedy["gen_text_until_eos"] as? String)
        XCTAssertEqual(result["finish_reason"] as? String, "stop")
        XCTAssertEqual(result["images_dropped"] as? Int, 0)
    }
}
