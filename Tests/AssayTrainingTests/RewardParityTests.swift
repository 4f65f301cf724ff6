import AssayCore
@testable import AssayTraining
import AssayTestSupport
import Foundation
import XCTest

/// The critic reward as the Swift trainer computes it and as the exported Python file computes it
/// (EasyR1 loads the latter) must agree on every response.
final class RewardParityTests: XCTestCase {
    func testTheRewardFollowsTheReleasedFormatAndLabels() {
        let reward = CriticPreferenceReward()
        let cases: [(String, String, Double, Double)] = [
            // response, ground truth, format, accuracy
            ("<think>Response 2 adds wrongly.</think> So \\boxed{1}.", "1", 1, 1),
            ("<think>…</think>\\boxed{2}", "1", 1, 0),
            (" < think >spaced tags< / think >\n\\boxed{ Response 2 }", "2", 1, 1),
            ("\\boxed{2}", "2", 0, 1),                                   // right, no reasoning block
            ("<think>a</think> \\boxed{1} then \\boxed{2}", "2", 1, 1),  // the last box counts
            ("<think>a</think> \\boxed{\\text{1}}", "1", 1, 1),
            ("<think>a</think> \\boxed{12}", "1", 1, 0),
            ("<think>a</think> \\boxed{1", "1", 0, 0),                    // an unclosed box: no brace after it, no prediction
            ("<think>never closed \\boxed{1}", "1", 0, 1),
            ("", "1", 0, 0),
        ]
        for (response, truth, format, accuracy) in cases {
            let score = reward.score(RewardInput(response: response, groundTruth: truth))
            XCTAssertEqual(score.components["format"], format, response)
            XCTAssertEqual(score.components["accuracy"], accuracy, response)
            XCTAssertEqual(score.overall, 0.9 * accuracy + 0.1 * format, accuracy: 1e-15, response)
        }
    }

    /// Over a thousand responses — real model outputs from the fixtures, and generated edge cases
    /// (missing or spaced tags, two boxes, nested and unclosed braces, Unicode whitespace and
    /// scripts, every label spelling) — Swift and Python give the same three numbers.
    func testSwiftAndTheExportedPythonRewardAgreeOnEveryResponse() throws {
        guard let python = Self.which("python3") else { throw XCTSkip("python3 is not installed: the parity test needs it") }
        var responses = Self.generatedEdgeCases()
        if let real = try? Self.fixtureResponses() {
            responses += real
            // Real texts in the critic's format too.
            responses += real.prefix(300).enumerated().map { "<think>\($0.element)</think> \\boxed{\($0.offset % 3 == 0 ? "2" : "1")}" }
        }
        XCTAssertGreaterThanOrEqual(responses.count, 1000)
        let inputs = responses.enumerated().map { RewardInput(response: $0.element, responseLength: $0.element.count,
                                                              groundTruth: $0.offset % 2 == 0 ? "1" : "2") }
        let directory = try Fixtures.temporaryDirectory(for: self)
        try EasyR1Export.pythonReward().write(to: directory.appendingPathComponent("critic_reward.py"), atomically: true, encoding: .utf8)
        let encoder = JSONEncoder()
        let lines = try inputs.map { input -> String in
            let row = ["response": input.response, "response_length": String(input.responseLength), "ground_truth": input.groundTruth]
            return String(decoding: try encoder.encode(row), as: UTF8.self)
        }
        try (lines.joined(separator: "\n") + "\n").write(to: directory.appendingPathComponent("inputs.jsonl"), atomically: true, encoding: .utf8)
        try """
            import json, sys
            sys.path.insert(0, sys.argv[1])
            from critic_reward import compute_score
            rows = [json.loads(line) for line in open(sys.argv[2], encoding="utf-8") if line.strip()]
            for row in rows:
                row["response_length"] = int(row["response_length"])
            for score in compute_score(rows):
                print(json.dumps([score["overall"], score["format"], score["accuracy"]]))

            """.write(to: directory.appendingPathComponent("run.py"), atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [directory.appendingPathComponent("run.py").path, directory.path, directory.appendingPathComponent("inputs.jsonl").path]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
        let pythonScores = try String(decoding: data, as: UTF8.self).split(separator: "\n").map {
            try JSONDecoder().decode([Double].self, from: Data($0.utf8))
        }
        XCTAssertEqual(pythonScores.count, inputs.count)
        let swiftScores = CriticPreferenceReward().score(inputs)
        var mismatches = 0
        for (index, (swift, py)) in zip(swiftScores, pythonScores).enumerated()
        where [swift.overall, swift.components["format"] ?? -1, swift.components["accuracy"] ?? -1] != py {
            mismatches += 1
            if mismatches <= 5 { XCTFail("response \(index) \(inputs[index].response.debugDescription): Swift \(swift) Python \(py)") }
        }
        XCTAssertEqual(mismatches, 0)
        // Both values occur, so agreement is not agreement on a constant.
        XCTAssertGreaterThan(swiftScores.filter { $0.components["format"] == 1 }.count, 100)
        XCTAssertGreaterThan(swiftScores.filter { $0.components["accuracy"] == 1 }.count, 100)
        XCTAssertGreaterThan(swiftScores.filter { $0.components["accuracy"] == 0 }.count, 100)
    }

    static func generatedEdgeCases() -> [String] {
        let opens = ["<think>", " <think>", "< think >", "<Think>", "", "<think\u{00A0}>", "\u{2003}<think>", "think>"]
        let bodies = ["", "Response 1 is wrong: 3 + 4 is 7.", "多くの理由で 2 が良い", "é\u{0301} / ratio", "a}b{c", "\n\n", "\u{85}line\u{2028}"]
        let closes = ["</think>", "< / think >", "</think", "</ think>\u{3000}", "", "</THINK>"]
        let boxes = ["\\boxed{1}", "\\boxed{2}", "\\boxed{ Response 2 }", "\\boxed{\\text{1}}", "\\boxed{{1}}", "\\boxed{1",
                     "\\boxed{1} and \\boxed{2}", "\\boxed {1}", "\\boxed{12}", "\\boxed{one}", "\\boxed{Second}", "\\boxed{None}",
                     "\\boxed{\\textbf{Answer 2}.}", "\\boxed{}", "no box", "\\boxed{İ}", "\\boxed{２}", "\\fbox{1}"]
        let tails = ["", ".", " Final.", "\u{00A0}\u{00A0}"]
        var cases: [String] = []
        var k = 0
        for open in opens {
            for body in bodies {
                for close in closes {
                    // Every combination of the tags and bodies; boxes and tails rotate through them.
                    let box = boxes[k % boxes.count], tail = tails[(k / boxes.count) % tails.count]
                    cases.append(open + body + close + " " + box + tail)
                    k += 1
                }
            }
        }
        for box in boxes { for tail in tails { cases.append("<think>x</think>" + box + tail) } }
        return cases
    }

    /// Model responses from the fixtures' published predictions (MathVista's three models).
    static func fixtureResponses() throws -> [String] {
        var texts: [String] = []
        for model in ["bard/output_bard.json", "llava/output_llava_llama_2_13b.json", "instruct_blip2/output_instruct_blip2_vicuna_13b.json"] {
            guard let url = try? Fixtures.require("benchmarks/mathvista/results/\(model)") else { continue }
            guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else { continue }
            for case let row as [String: Any] in object.values {
                if let response = row["response"] as? String, !response.isEmpty { texts.append(response) }
            }
        }
        if texts.isEmpty { throw XCTSkip("MathVista predictions are not in ../shared/fixtures") }
        return texts.sorted()
    }

    static func which(_ program: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(directory)/\(program)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}
