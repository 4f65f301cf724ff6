import AssayTestSupport
import Foundation
import VLMRuntime
import XCTest
@testable import VLMTraining

final class AdamWTests: XCTestCase {
    // MARK: Against torch

    /// θ0 (the checkpoint) and the golden stage-0 gradient through one step must give torch's θ1.
    func testOneStepFromTheGoldenGradientMatchesTorch() throws {
        let g = try GRPOGoldens.load()
        let checkpoint = try SafeTensorsFile(
            path: try Fixtures.require("goldens/qwen2_5_vl_tiny/checkpoint/model.safetensors").path)
        let names = try XCTUnwrap(try g.section("named_parameters").keys.sorted() as [String]?)
        XCTAssertEqual(names.count, 9)
        let set = ParameterSet()
        for name in names {
            let entry = try XCTUnwrap(checkpoint.entries[name], name)
            let p = Parameter(name: name, shape: entry.shape, value: try checkpoint.floats(name))
            p.grad = try g.file.floats("grpo/stage0/grad/\(name)")
            XCTAssertEqual(p.grad.count, p.count, name)
            set.append(p)
        }
        let settings = try g.section("settings")["adamw"] as? [String: Any]
        XCTAssertEqual((settings?["lr"] as? NSNumber)?.doubleValue, 1e-3)
        XCTAssertEqual((settings?["weight_decay"] as? NSNumber)?.doubleValue, 0.01)
        let optimizer = try AdamW(lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01)
        try optimizer.step(set)
        var all = Deviation("adamw/param_after (all 9)", atol: 1e-6, rtol: 0)
        for name in names {
            let want = try g.file.floats("grpo/adamw/param_after/\(name)")
            let got = try XCTUnwrap(set[name]).value
            var dev = Deviation("adamw/param_after/\(name)", atol: 1e-6, rtol: 0)
            var bitEqual = 0
            for (k, (a, b)) in zip(got, want).enumerated() {
                dev.check(Double(a), Double(b), "[\(k)]")
                all.check(Double(a), Double(b), "\(name)[\(k)]")
                if a.bitPattern == b.bitPattern { bitEqual += 1 }
            }
            dev.report()
            print("[golden] adamw/param_after/\(name): \(bitEqual) of \(want.count) bit-identical")
        }
        all.report()
    }

    // MARK: Semantics

    /// Three steps against the formula written out in Float64.
    func testStepsFollowDecoupledAdamWWithBiasCorrection() throws {
        let p = Parameter(name: "w", shape: [4], value: [0.5, -1, 2, 0])
        let set = ParameterSet([p])
        let optimizer = try AdamW(lr: 0.01, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1)
        var ref = p.value.map(Double.init)
        var m = [Double](repeating: 0, count: 4), v = m
        for step in 1...3 {
            let grads: [Float] = [0.1 * Float(step), -0.3, 1e-3, 2]
            p.grad = grads
            try optimizer.step(set)
            for i in 0..<4 {
                let gd = Double(grads[i])
                ref[i] *= 1 - 0.01 * 0.1
                m[i] = 0.9 * m[i] + 0.1 * gd
                v[i] = 0.99 * v[i] + 0.01 * gd * gd
                let mhat = m[i] / (1 - pow(0.9, Double(step))), vhat = v[i] / (1 - pow(0.99, Double(step)))
                ref[i] -= 0.01 * mhat / (vhat.squareRoot() + 1e-8)
                XCTAssertEqual(Double(p.value[i]), ref[i], accuracy: 1e-6, "step \(step) [\(i)]")
            }
        }
        XCTAssertEqual(optimizer.stepCount, 3)
        XCTAssertEqual(optimizer.moments(of: "w")?.step, 3)
    }

    func testFrozenParametersAreLeftAloneAndBadGradientsThrowBeforeAnyChange() throws {
        let a = Parameter(name: "a", shape: [2], value: [1, 2])
        let b = Parameter(name: "b", shape: [2], value: [3, 4], trainable: false)
        a.grad = [1, 1]; b.grad = [1, 1]
        let set = ParameterSet([a, b])
        let optimizer = try AdamW()
        try optimizer.step(set)
        XCTAssertEqual(b.value, [3, 4])
        XCTAssertNil(optimizer.moments(of: "b"))
        XCTAssertNotEqual(a.value, [1, 2])
        let before = a.value
        a.grad = [1]
        XCTAssertThrowsError(try optimizer.step(set)) {
            XCTAssertEqual($0 as? AdamWError, .gradientSizeMismatch(parameter: "a", values: 2, gradients: 1))
        }
        XCTAssertEqual(a.value, before)
        XCTAssertEqual(optimizer.stepCount, 1)
        XCTAssertThrowsError(try AdamW(lr: -1)) {
            XCTAssertEqual($0 as? AdamWError, .invalidHyperparameter(name: "lr", value: -1))
        }
    }

    func testClipGradientsScalesToTheMaximumNormAndReturnsThePreClipNorm() {
        let a = Parameter(name: "a", shape: [2], value: [0, 0])
        let frozen = Parameter(name: "f", shape: [1], value: [0], trainable: false)
        a.grad = [3, 4]; frozen.grad = [100]
        let set = ParameterSet([a, frozen])
        XCTAssertEqual(AdamW.clipGradients(set, maxNorm: 10), 5, accuracy: 1e-12)
        XCTAssertEqual(a.grad, [3, 4])
        XCTAssertEqual(AdamW.clipGradients(set, maxNorm: 1), 5, accuracy: 1e-12)
        let coef = Float(1 / (5 + 1e-6))
        XCTAssertEqual(a.grad, [3 * coef, 4 * coef])
        XCTAssertEqual(frozen.grad, [100])
        XCTAssertEqual(set.globalGradientNorm(), 1, accuracy: 1e-6)
    }

    // MARK: Save / load

    private func makeSet() -> ParameterSet {
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> Float {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: seed >> 11) % 2_000_001 - 1_000_000) / 1_000_000
        }
        return ParameterSet([
            Parameter(name: "model.layers.0.mlp.up_proj.weight", shape: [3, 5], value: (0..<15).map { _ in next() }),
            Parameter(name: "model.norm.weight", shape: [5], value: (0..<5).map { _ in next() }),
            Parameter(name: "visual.blocks.0.norm1.weight", shape: [4], value: (0..<4).map { _ in next() }, trainable: false),
        ])
    }

    /// A deterministic gradient that depends on the step and the current values.
    private func setGradients(_ set: ParameterSet, step: Int) {
        for p in set.parameters {
            p.grad = p.value.enumerated().map { k, x in sin(Float(step * 31 + k)) * 0.01 + x * x * 1e-3 - Float(step) * 1e-4 }
        }
    }

    func testResumedOptimizerContinuesBitForBit() throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let lr = 0.000_123_456_789_012_3
        let straight = makeSet(), interrupted = makeSet()
        let a = try AdamW(lr: lr, beta1: 0.85, beta2: 0.995, eps: 1e-7, weightDecay: 0.02)
        let b = try AdamW(lr: lr, beta1: 0.85, beta2: 0.995, eps: 1e-7, weightDecay: 0.02)
        for step in 1...3 {
            setGradients(straight, step: step); try a.step(straight)
            setGradients(interrupted, step: step); try b.step(interrupted)
        }
        try b.save(to: dir.path)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        XCTAssertEqual(files, ["optimizer.json", "optimizer.safetensors"])
        let tensors = try SafeTensorsFile(path: dir.appendingPathComponent("optimizer.safetensors").path)
        XCTAssertEqual(tensors.entries.keys.sorted(), [
            "model.layers.0.mlp.up_proj.weight.exp_avg", "model.layers.0.mlp.up_proj.weight.exp_avg_sq",
            "model.norm.weight.exp_avg", "model.norm.weight.exp_avg_sq"])
        XCTAssertEqual(tensors.entries["model.layers.0.mlp.up_proj.weight.exp_avg"]?.shape, [3, 5])
        XCTAssertEqual(tensors.entries["model.norm.weight.exp_avg_sq"]?.dtype, .f32)
        let json = try XCTUnwrap(try Fixtures.readJSON(dir.appendingPathComponent("optimizer.json")) as? [String: Any])
        XCTAssertEqual((json["step"] as? NSNumber)?.intValue, 3)
        // Decimal numbers for people (Foundation's parser may be an ulp off; the bit patterns are exact).
        let decimals: [(String, Any?, Double)] = [("lr", json["lr"], lr), ("eps", json["eps"], 1e-7),
                                                  ("weight_decay", json["weight_decay"], 0.02),
                                                  ("beta1", (json["betas"] as? [Any])?.first, 0.85),
                                                  ("beta2", (json["betas"] as? [Any])?.last, 0.995)]
        for (key, value, want) in decimals {
            XCTAssertEqual(((value as? NSNumber)?.doubleValue ?? 0) / want, 1, accuracy: 1e-12, key)
        }
        let listed = (json["parameters"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        XCTAssertEqual(listed, ["model.layers.0.mlp.up_proj.weight", "model.norm.weight"])

        let resumed = try AdamW.load(from: dir.path, parameters: interrupted)
        XCTAssertEqual(resumed.lr.bitPattern, lr.bitPattern)
        XCTAssertEqual([resumed.beta1, resumed.beta2, resumed.eps, resumed.weightDecay], [0.85, 0.995, 1e-7, 0.02])
        XCTAssertEqual(resumed.stepCount, 3)
        XCTAssertEqual(resumed.state, b.state)
        for step in 4...6 {
            setGradients(straight, step: step); try a.step(straight)
            setGradients(interrupted, step: step); try resumed.step(interrupted)
        }
        for (p, q) in zip(straight.parameters, interrupted.parameters) {
            XCTAssertEqual(p.value.map(\.bitPattern), q.value.map(\.bitPattern), p.name)
            XCTAssertEqual(a.moments(of: p.name)?.expAvg.map(\.bitPattern), resumed.moments(of: p.name)?.expAvg.map(\.bitPattern))
            XCTAssertEqual(a.moments(of: p.name)?.expAvgSq.map(\.bitPattern), resumed.moments(of: p.name)?.expAvgSq.map(\.bitPattern))
        }
        XCTAssertEqual(resumed.state, a.state)
        XCTAssertEqual(resumed.stepCount, 6)
    }

    func testLoadRejectsMissingCorruptAndMismatchedStateWithNamedErrors() throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let set = makeSet()
        let optimizer = try AdamW()
        setGradients(set, step: 1)
        try optimizer.step(set)
        let jsonPath = dir.appendingPathComponent("optimizer.json").path
        let tensorsPath = dir.appendingPathComponent("optimizer.safetensors").path
        func expect(_ want: AdamWError, parameters: ParameterSet? = nil, line: UInt = #line) {
            XCTAssertThrowsError(try AdamW.load(from: dir.path, parameters: parameters ?? set), line: line) {
                XCTAssertEqual($0 as? AdamWError, want, line: line)
            }
        }
        func expectAny(parameters: ParameterSet? = nil, line: UInt = #line, _ check: (AdamWError) -> Bool) {
            XCTAssertThrowsError(try AdamW.load(from: dir.path, parameters: parameters ?? set), line: line) {
                guard let e = $0 as? AdamWError else { return XCTFail("untyped error \($0)", line: line) }
                XCTAssertTrue(check(e), "unexpected \(e)", line: line)
            }
        }

        expect(.missingFile(file: jsonPath))
        try optimizer.save(to: dir.path)
        XCTAssertNoThrow(try AdamW.load(from: dir.path, parameters: set))

        // A model whose parameter has another shape.
        let reshaped = ParameterSet([
            Parameter(name: "model.layers.0.mlp.up_proj.weight", shape: [5, 3], value: .init(repeating: 0, count: 15)),
            Parameter(name: "model.norm.weight", shape: [5], value: .init(repeating: 0, count: 5)),
        ])
        expect(.wrongShape(file: jsonPath, tensor: "model.layers.0.mlp.up_proj.weight", expected: [5, 3], actual: [3, 5]),
               parameters: reshaped)
        // A model with another trainable parameter and without one of the saved ones.
        let other = ParameterSet([
            Parameter(name: "model.norm.weight", shape: [5], value: .init(repeating: 0, count: 5)),
            Parameter(name: "lm_head.weight", shape: [2], value: [0, 0]),
        ])
        expect(.parameterMismatch(file: jsonPath, missing: ["lm_head.weight"],
                                  unexpected: ["model.layers.0.mlp.up_proj.weight"]), parameters: other)

        // A truncated tensor file.
        let good = try Data(contentsOf: URL(fileURLWithPath: tensorsPath))
        try good.prefix(good.count - 9).write(to: URL(fileURLWithPath: tensorsPath))
        expectAny {
            if case .safeTensors(.tensorOutOfBounds(let file, let tensor, _, _)) = $0 {
                return file == tensorsPath && tensor.hasPrefix("model.")
            }
            return false
        }
        // A tensor file that lacks one moment.
        try SafeTensorsWriter.write(path: tensorsPath, tensors: [
            .init(name: "model.layers.0.mlp.up_proj.weight.exp_avg", shape: [3, 5], dtype: .f32),
            .init(name: "model.layers.0.mlp.up_proj.weight.exp_avg_sq", shape: [3, 5], dtype: .f32),
            .init(name: "model.norm.weight.exp_avg", shape: [5], dtype: .f32),
        ]) { _, buf in for i in buf.indices { buf[i] = 0 } }
        expect(.missingTensor(file: tensorsPath, tensor: "model.norm.weight.exp_avg_sq"))
        // A second moment that is negative (impossible) or NaN.
        try SafeTensorsWriter.write(path: tensorsPath, tensors: [
            .init(name: "model.layers.0.mlp.up_proj.weight.exp_avg", shape: [3, 5], dtype: .f32),
            .init(name: "model.layers.0.mlp.up_proj.weight.exp_avg_sq", shape: [3, 5], dtype: .f32),
            .init(name: "model.norm.weight.exp_avg", shape: [5], dtype: .f32),
            .init(name: "model.norm.weight.exp_avg_sq", shape: [5], dtype: .f32),
        ]) { spec, buf in
            for i in buf.indices { buf[i] = 0 }
            if spec.name == "model.norm.weight.exp_avg_sq" { buf[2] = .nan }
        }
        expect(.nonFiniteState(file: tensorsPath, tensor: "model.norm.weight.exp_avg_sq", index: 2))
        // A moment stored with the wrong shape.
        try SafeTensorsWriter.write(path: tensorsPath, tensors: [
            .init(name: "model.layers.0.mlp.up_proj.weight.exp_avg", shape: [15], dtype: .f32),
            .init(name: "model.layers.0.mlp.up_proj.weight.exp_avg_sq", shape: [3, 5], dtype: .f32),
            .init(name: "model.norm.weight.exp_avg", shape: [5], dtype: .f32),
            .init(name: "model.norm.weight.exp_avg_sq", shape: [5], dtype: .f32),
        ]) { _, buf in for i in buf.indices { buf[i] = 0 } }
        expect(.wrongShape(file: tensorsPath, tensor: "model.layers.0.mlp.up_proj.weight.exp_avg",
                           expected: [3, 5], actual: [15]))
        // A JSON file that is not JSON, and one without a learning rate.
        try Data("{\"step\": 1, \"lr\": ".utf8).write(to: URL(fileURLWithPath: jsonPath))
        expect(.corruptState(file: jsonPath, reason: "not valid JSON"))
        try Data("{\"step\": 1, \"betas\": [0.9, 0.999], \"eps\": 1e-8, \"weight_decay\": 0, \"parameters\": []}".utf8)
            .write(to: URL(fileURLWithPath: jsonPath))
        expect(.corruptState(file: jsonPath, reason: "'lr' is missing or not a number"))

        // Saving again replaces both files and leaves no temporary files behind.
        try optimizer.save(to: dir.path)
        XCTAssertNoThrow(try AdamW.load(from: dir.path, parameters: set))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(),
                       ["optimizer.json", "optimizer.safetensors"])
    }
}
