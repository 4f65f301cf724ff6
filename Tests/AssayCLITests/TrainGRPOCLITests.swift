import AssayStore
import AssayTestSupport
import Foundation
import XCTest

/// `assay train grpo` from outside: killed with SIGKILL after its first checkpoint and started
/// again with the same command, it ends with the weights of a run that was never interrupted.
extension CLITests {
    func criticRows() throws -> URL {
        let images = directory.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: try Fixtures.require("goldens/processor/img_f_180x300.png"), to: images.appendingPathComponent("a.png"))
        let rows: [[String: Any]] = (0..<5).map { i in
            ["problem": "<image>Question \(i): which response is better? Answer \\boxed{1} or \\boxed{2}.", "answer": i % 2 == 0 ? "1" : "2",
             "images": ["images/a.png"]]
        }
        let file = directory.appendingPathComponent("train.jsonl")
        try Fixtures.writeJSONL(rows, to: file)
        return file
    }

    func grpoArguments(model: String, data: URL, out: URL, db: URL) -> [String] {
        ["train", "grpo", "--model-path", model, "--data", data.path, "--out", out.path, "--db", db.path, "--run", "kill",
         "--steps", "24", "--prompts-per-step", "2", "--group-size", "3", "--max-new-tokens", "5", "--lr", "1e-3", "--beta", "0.02",
         "--save-every", "3", "--seed", "4", "--threads", "2"]
    }

    func testTrainGRPOKilledWithSIGKILLResumesToTheSameWeights() throws {
        let model = try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint/config.json").deletingLastPathComponent().path
        let data = try criticRows()
        let straight = directory.appendingPathComponent("straight")
        let (out, _) = try assay(grpoArguments(model: model, data: data, out: straight, db: directory.appendingPathComponent("a.sqlite")))
        XCTAssertTrue(out.contains("finished at step 24 of 24"), out)

        // The same run, killed once its first checkpoint is complete.
        let killed = directory.appendingPathComponent("killed")
        let db = directory.appendingPathComponent("b.sqlite")
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = grpoArguments(model: model, data: data, out: killed, db: db)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let marker = killed.appendingPathComponent("checkpoints/step-000003/trainer-state.json").path
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: marker), process.isRunning, Date() < deadline { usleep(2_000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal, "the run ended before it could be killed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed.appendingPathComponent("checkpoints/step-000024").path))

        let (again, _) = try assay(grpoArguments(model: model, data: data, out: killed, db: db))
        XCTAssertTrue(again.contains("resumed from step"), again)
        XCTAssertTrue(again.contains("finished at step 24 of 24"), again)
        let a = try Data(contentsOf: straight.appendingPathComponent("checkpoints/step-000024/model/model.safetensors"))
        let b = try Data(contentsOf: killed.appendingPathComponent("checkpoints/step-000024/model/model.safetensors"))
        XCTAssertEqual(a, b, "the resumed run's final weights differ from the uninterrupted run's")
        XCTAssertNotEqual(a, try Data(contentsOf: URL(fileURLWithPath: model).appendingPathComponent("model.safetensors")))

        // A bad row is named by file and line, and nothing is trained.
        let bad = directory.appendingPathComponent("bad.jsonl")
        try Data("{\"problem\": \"Which?\", \"answer\": \"7\"}\n".utf8).write(to: bad)
        let (_, err) = try assay(["train", "grpo", "--model-path", model, "--data", bad.path, "--out", directory.appendingPathComponent("c").path,
                                  "--db", db.path, "--run", "bad", "--steps", "1"], expectFailure: true)
        XCTAssertTrue(err.contains("bad.jsonl:1:") && err.contains("not a critic label"), err)
    }

    func testTrainGRPOStopsOnCtrlCWithACheckpointOfTheLastStep() throws {
        let model = try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint/config.json").deletingLastPathComponent().path
        let data = try criticRows()
        let out = directory.appendingPathComponent("interrupted")
        let process = Process()
        process.executableURL = Self.binary
        var arguments = grpoArguments(model: model, data: data, out: out, db: directory.appendingPathComponent("c.sqlite"))
        arguments[arguments.firstIndex(of: "--save-every")! + 1] = "1000"
        process.arguments = arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until the run is stepping (the store has a step), then interrupt it.
        let db = directory.appendingPathComponent("c.sqlite").path
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning, Date() < deadline {
            if FileManager.default.fileExists(atPath: db), let store = try? Store(existingPath: db, readOnly: true),
               let run = try? store.trainingRun(named: "kill"), let steps = try? store.trainingSteps(run.id), !steps.isEmpty { break }
            usleep(5_000)
        }
        kill(process.processIdentifier, SIGINT)
        let text = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130, text)
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("stopped at step") }, text)
        let step = try XCTUnwrap(Int(line.split(separator: " ")[3]), text)
        XCTAssertGreaterThan(step, 0)
        XCTAssertLessThan(step, 24)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(String(format: "checkpoints/step-%06d/trainer-state.json", step)).path))
    }
}
