import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import VLMRuntime

/// Why an optimizer step, save or load failed. Every case names the parameter, file or tensor.
public enum AdamWError: Error, Equatable, CustomStringConvertible {
    case gradientSizeMismatch(parameter: String, values: Int, gradients: Int)
    /// The optimizer holds state of another size for this parameter (the model changed under it).
    case stateSizeMismatch(parameter: String, expected: Int, actual: Int)
    case invalidHyperparameter(name: String, value: Double)
    case missingFile(file: String)
    case corruptState(file: String, reason: String)
    /// The saved state and the parameter set do not list the same trainable parameters.
    case parameterMismatch(file: String, missing: [String], unexpected: [String])
    case missingTensor(file: String, tensor: String)
    case wrongShape(file: String, tensor: String, expected: [Int], actual: [Int])
    case wrongDType(file: String, tensor: String, dtype: String)
    case nonFiniteState(file: String, tensor: String, index: Int)
    case safeTensors(SafeTensorsError)
    case writeFailed(file: String, reason: String)

    public var description: String {
        switch self {
        case .gradientSizeMismatch(let p, let v, let g): return "AdamW: parameter '\(p)' has \(v) values but \(g) gradients"
        case .stateSizeMismatch(let p, let e, let a): return "AdamW: state of '\(p)' has \(a) values, the parameter \(e)"
        case .invalidHyperparameter(let n, let v): return "AdamW: invalid \(n) = \(v)"
        case .missingFile(let f): return "\(f): optimizer state file not found"
        case .corruptState(let f, let r): return "\(f): corrupt optimizer state: \(r)"
        case .parameterMismatch(let f, let m, let u):
            return "\(f): optimizer state does not match the trainable parameters (missing state: \(m), unknown: \(u))"
        case .missingTensor(let f, let t): return "\(f): tensor '\(t)' is missing"
        case .wrongShape(let f, let t, let e, let a): return "\(f): tensor '\(t)' has shape \(a), expected \(e)"
        case .wrongDType(let f, let t, let d): return "\(f): tensor '\(t)' has dtype \(d), expected F32"
        case .nonFiniteState(let f, let t, let i): return "\(f): tensor '\(t)' holds an invalid value at index \(i)"
        case .safeTensors(let e): return e.description
        case .writeFailed(let f, let r): return "\(f): cannot write optimizer state: \(r)"
        }
    }
}

/// torch.optim.AdamW (`foreach=False`, no amsgrad, not maximising) on the trainable parameters of
/// a `ParameterSet`, in float32 with torch's operation order, so that one step from the same
/// gradient reproduces torch's parameters:
///
///     p ← p · (1 − lr·wd)
///     m ← m + (1 − β1)(g − m)            (lerp_, fused multiply-add as torch's vector kernel)
///     v ← v·β2 + ((1 − β2)·g)·g
///     bc1 = 1 − β1^t, bc2 = 1 − β2^t     (Float64, as Python floats)
///     p ← p + (−(lr / bc1)·m) / (sqrt(v) / sqrt(bc2) + eps)
///
/// Every trainable parameter is decayed (no bias / norm exclusion). Frozen parameters are left
/// alone and get no state. Each parameter keeps its own step count, as torch does.
///
/// Not thread-safe: one training loop owns it (and the `ParameterSet` it updates).
public final class AdamW {
    /// The learning rate of the next step (a schedule may change it between steps).
    public var lr: Double
    public let beta1: Double
    public let beta2: Double
    public let eps: Double
    public let weightDecay: Double
    /// Number of `step` calls so far.
    public private(set) var stepCount: Int = 0

    struct State: Equatable {
        var step: Int
        var shape: [Int]
        var expAvg: [Float]
        var expAvgSq: [Float]
    }
    private(set) var state: [String: State] = [:]

    public static let stateTensorsFile = "optimizer.safetensors"
    public static let stateJSONFile = "optimizer.json"

    public init(lr: Double = 1e-3, beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8,
                weightDecay: Double = 0.01) throws {
        for (name, value, ok) in [("lr", lr, lr >= 0 && lr.isFinite), ("beta1", beta1, beta1 >= 0 && beta1 < 1),
                                  ("beta2", beta2, beta2 >= 0 && beta2 < 1), ("eps", eps, eps >= 0 && eps.isFinite),
                                  ("weight_decay", weightDecay, weightDecay >= 0 && weightDecay.isFinite)] where !ok {
            throw AdamWError.invalidHyperparameter(name: name, value: value)
        }
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
    }

    /// The first and second moment of a parameter (nil before its first step).
    public func moments(of name: String) -> (expAvg: [Float], expAvgSq: [Float], step: Int)? {
        state[name].map { ($0.expAvg, $0.expAvgSq, $0.step) }
    }

    // MARK: Step

    /// One update of every trainable parameter from its `grad`. Checks every size before
    /// changing anything, so a throw leaves parameters and state untouched.
    public func step(_ parameters: ParameterSet) throws {
        let active = parameters.parameters.filter(\.trainable)
        for p in active {
            guard p.grad.count == p.value.count else {
                throw AdamWError.gradientSizeMismatch(parameter: p.name, values: p.value.count, gradients: p.grad.count)
            }
            if let s = state[p.name], s.expAvg.count != p.value.count || s.expAvgSq.count != p.value.count {
                throw AdamWError.stateSizeMismatch(parameter: p.name, expected: p.value.count, actual: s.expAvg.count)
            }
        }
        stepCount += 1
        for p in active {
            var s = state[p.name] ?? State(step: 0, shape: p.shape, expAvg: [Float](repeating: 0, count: p.count),
                                           expAvgSq: [Float](repeating: 0, count: p.count))
            state[p.name] = nil  // keep the arrays uniquely referenced while they are updated in place
            s.step += 1
            update(p, &s)
            state[p.name] = s
        }
    }

    private func update(_ p: Parameter, _ s: inout State) {
        let t = Double(s.step)
        let decay = Float(1 - lr * weightDecay)
        let w1 = Float(1 - beta1)
        let b2 = Float(beta2), w2 = Float(1 - beta2)
        let biasCorrection1 = 1 - Foundation.pow(beta1, t)
        let biasCorrection2 = 1 - Foundation.pow(beta2, t)
        let negStepSize = Float(-(lr / biasCorrection1))
        let bc2Sqrt = Float(Foundation.pow(biasCorrection2, 0.5))
        let epsF = Float(eps)
        let applyDecay = weightDecay != 0
        let n = p.count
        p.value.withUnsafeMutableBufferPointer { value in
            p.grad.withUnsafeBufferPointer { grad in
                s.expAvg.withUnsafeMutableBufferPointer { m in
                    s.expAvgSq.withUnsafeMutableBufferPointer { v in
                        for i in 0..<n {
                            let g = grad[i]
                            var x = value[i]
                            if applyDecay { x = x * decay }
                            m[i] = m[i].addingProduct(w1, g - m[i])
                            v[i] = v[i] * b2 + (w2 * g) * g
                            let denom = v[i].squareRoot() / bc2Sqrt + epsF
                            x = x + (negStepSize * m[i]) / denom
                            value[i] = x
                        }
                    }
                }
            }
        }
    }

    // MARK: Gradient clipping

    /// torch.nn.utils.clip_grad_norm_: the total L2 norm over every trainable gradient (here
    /// accumulated in Float64), coef = maxNorm / (norm + 1e-6), and the gradients multiplied by
    /// coef when it is below 1. Returns the norm before clipping. A non-finite norm leaves the
    /// gradients as they are (torch would turn them all into NaN); the caller should skip the step.
    @discardableResult
    public static func clipGradients(_ set: ParameterSet, maxNorm: Double) -> Double {
        let norm = set.globalGradientNorm()
        guard norm.isFinite else { return norm }
        let coef = maxNorm / (norm + 1e-6)
        guard coef < 1 else { return norm }
        let c = Float(coef)
        for p in set.parameters where p.trainable {
            p.grad.withUnsafeMutableBufferPointer { g in for i in g.indices { g[i] *= c } }
        }
        return norm
    }

    // MARK: Save / load

    /// Writes `optimizer.safetensors` (`<param>.exp_avg`, `<param>.exp_avg_sq`, F32) and
    /// `optimizer.json` (step, lr, betas, eps, weight_decay, per-parameter names, shapes and
    /// steps, and the Float64 bit patterns of the hyper-parameters so that a resume is exact) into
    /// `directory`, each under a temporary name first and then renamed, the JSON last.
    public func save(to directory: String) throws {
        let names = state.keys.sorted()
        let shapes = state.mapValues(\.shape)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw AdamWError.writeFailed(file: directory, reason: "\(error)")
        }
        let tensorsPath = (directory as NSString).appendingPathComponent(Self.stateTensorsFile)
        let jsonPath = (directory as NSString).appendingPathComponent(Self.stateJSONFile)
        let suffix = ".tmp-\(getpid())-\(UUID().uuidString)"
        let tensorsTemp = tensorsPath + suffix, jsonTemp = jsonPath + suffix
        defer { unlink(tensorsTemp); unlink(jsonTemp) }

        var specs: [SafeTensorsWriter.Spec] = []
        for name in names {
            specs.append(.init(name: name + ".exp_avg", shape: shapes[name] ?? [], dtype: .f32))
            specs.append(.init(name: name + ".exp_avg_sq", shape: shapes[name] ?? [], dtype: .f32))
        }
        let state = self.state
        do {
            try SafeTensorsWriter.write(path: tensorsTemp, tensors: specs, metadata: ["format": "pt", "content": "adamw"]) { spec, buf in
                let isSq = spec.name.hasSuffix(".exp_avg_sq")
                let name = String(spec.name.dropLast(isSq ? ".exp_avg_sq".count : ".exp_avg".count))
                guard let s = state[name] else { return }
                let src = isSq ? s.expAvgSq : s.expAvg
                for i in 0..<min(buf.count, src.count) { buf[i] = src[i] }
            }
            try Data(stateJSON(names: names, shapes: shapes).utf8).write(to: URL(fileURLWithPath: jsonTemp))
        } catch let e as AdamWError {
            throw e
        } catch let e as SafeTensorsError {
            throw AdamWError.safeTensors(e)
        } catch {
            throw AdamWError.writeFailed(file: tensorsPath, reason: "\(error)")
        }
        for (from, to) in [(tensorsTemp, tensorsPath), (jsonTemp, jsonPath)] where rename(from, to) != 0 {
            throw AdamWError.writeFailed(file: to, reason: String(cString: strerror(errno)))
        }
    }

    /// The JSON written by hand so that every Double is spelled in its shortest round-trip form.
    private func stateJSON(names: [String], shapes: [String: [Int]]) -> String {
        func quoted(_ s: String) -> String {
            let data = (try? JSONSerialization.data(withJSONObject: [s])) ?? Data("[\"\"]".utf8)
            return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
        }
        let params = names.map { name -> String in
            let shape = (shapes[name] ?? []).map(String.init).joined(separator: ", ")
            return "    {\"name\": \(quoted(name)), \"shape\": [\(shape)], \"step\": \(state[name]?.step ?? 0)}"
        }
        let bitsFields = [("lr", lr), ("beta1", beta1), ("beta2", beta2), ("eps", eps), ("weight_decay", weightDecay)]
            .map { "\"\($0.0)\": \"\($0.1.bitPattern)\"" }.joined(separator: ", ")
        return """
            {
              "format": "assay-adamw-1",
              "optimizer": "torch.optim.AdamW(foreach=False)",
              "step": \(stepCount),
              "lr": \(lr.description),
              "betas": [\(beta1.description), \(beta2.description)],
              "eps": \(eps.description),
              "weight_decay": \(weightDecay.description),
              "float64_bits": {\(bitsFields)},
              "tensors_file": \(quoted(Self.stateTensorsFile)),
              "parameters": [
            \(params.joined(separator: ",\n"))
              ]
            }

            """
    }

    /// Reads the state `save(to:)` wrote. The saved parameters must be exactly the
    /// trainable parameters of `parameters`, with the same shapes; anything else throws an error
    /// naming the file and the tensor.
    public static func load(from directory: String, parameters: ParameterSet) throws -> AdamW {
        let jsonPath = (directory as NSString).appendingPathComponent(stateJSONFile)
        let tensorsPath = (directory as NSString).appendingPathComponent(stateTensorsFile)
        for path in [jsonPath, tensorsPath] where !FileManager.default.fileExists(atPath: path) {
            throw AdamWError.missingFile(file: path)
        }
        let header = try readHeader(jsonPath)
        let optimizer: AdamW
        do {
            optimizer = try AdamW(lr: header.lr, beta1: header.beta1, beta2: header.beta2, eps: header.eps,
                                  weightDecay: header.weightDecay)
        } catch let AdamWError.invalidHyperparameter(name, value) {
            throw AdamWError.corruptState(file: jsonPath, reason: "invalid \(name) = \(value)")
        }
        optimizer.stepCount = header.step

        let trainable = Set(parameters.trainable.map(\.name))
        let saved = Set(header.parameters.map(\.name))
        guard saved.count == header.parameters.count else {
            throw AdamWError.corruptState(file: jsonPath, reason: "a parameter is listed twice")
        }
        if saved != trainable {
            throw AdamWError.parameterMismatch(file: jsonPath, missing: trainable.subtracting(saved).sorted(),
                                               unexpected: saved.subtracting(trainable).sorted())
        }
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(path: tensorsPath) } catch let e as SafeTensorsError {
            throw AdamWError.safeTensors(e)
        }
        let expected = Set(header.parameters.flatMap { [$0.name + ".exp_avg", $0.name + ".exp_avg_sq"] })
        if let extra = file.entries.keys.sorted().first(where: { !expected.contains($0) }) {
            throw AdamWError.corruptState(file: tensorsPath, reason: "unexpected tensor '\(extra)'")
        }
        for entry in header.parameters {
            guard let p = parameters[entry.name] else { continue }  // invariant: saved == trainable names
            guard entry.shape == p.shape else {
                throw AdamWError.wrongShape(file: jsonPath, tensor: entry.name, expected: p.shape, actual: entry.shape)
            }
            guard entry.step >= 1 else {
                throw AdamWError.corruptState(file: jsonPath, reason: "parameter '\(entry.name)' has step \(entry.step)")
            }
            let m = try readMoment(file, entry.name + ".exp_avg", shape: p.shape, nonNegative: false)
            let v = try readMoment(file, entry.name + ".exp_avg_sq", shape: p.shape, nonNegative: true)
            optimizer.state[entry.name] = State(step: entry.step, shape: p.shape, expAvg: m, expAvgSq: v)
        }
        return optimizer
    }

    private struct Header {
        struct Entry { var name: String; var shape: [Int]; var step: Int }
        var step: Int
        var lr, beta1, beta2, eps, weightDecay: Double
        var parameters: [Entry]
    }

    private static func readHeader(_ path: String) throws -> Header {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw AdamWError.corruptState(file: path, reason: "not valid JSON")
        }
        guard let json = object as? [String: Any] else {
            throw AdamWError.corruptState(file: path, reason: "not a JSON object")
        }
        func number(_ key: String, _ value: Any?) throws -> Double {
            guard let n = value as? NSNumber else {
                throw AdamWError.corruptState(file: path, reason: "'\(key)' is missing or not a number")
            }
            return n.doubleValue
        }
        func integer(_ key: String, _ value: Any?) throws -> Int {
            let d = try number(key, value)
            guard d >= 0, d == d.rounded(), d < 9.0e15 else {
                throw AdamWError.corruptState(file: path, reason: "'\(key)' is not a non-negative integer")
            }
            return Int(d)
        }
        guard let betas = json["betas"] as? [Any], betas.count == 2 else {
            throw AdamWError.corruptState(file: path, reason: "'betas' must be a list of two numbers")
        }
        guard let list = json["parameters"] as? [Any] else {
            throw AdamWError.corruptState(file: path, reason: "'parameters' is missing")
        }
        var entries: [Header.Entry] = []
        for (i, item) in list.enumerated() {
            guard let e = item as? [String: Any], let name = e["name"] as? String, let shape = e["shape"] as? [Any] else {
                throw AdamWError.corruptState(file: path, reason: "parameters[\(i)] needs 'name' and 'shape'")
            }
            entries.append(.init(name: name, shape: try shape.map { try integer("\(name).shape", $0) },
                                 step: try integer("\(name).step", e["step"])))
        }
        // The decimal numbers are for people; the bit patterns make a resumed run exact
        // (Foundation's JSON number parsing is not correctly rounded on every platform).
        let bits = json["float64_bits"] as? [String: Any] ?? [:]
        func exact(_ key: String, _ value: Any?) throws -> Double {
            let decimal = try number(key, value)
            guard let text = bits[key] else { return decimal }
            guard let string = text as? String, let pattern = UInt64(string) else {
                throw AdamWError.corruptState(file: path, reason: "float64_bits.\(key) is not a 64-bit pattern")
            }
            let d = Double(bitPattern: pattern)
            guard abs(d - decimal) <= 1e-12 * max(1, abs(decimal)) else {
                throw AdamWError.corruptState(file: path, reason: "'\(key)' = \(decimal) disagrees with its bit pattern (\(d))")
            }
            return d
        }
        return Header(step: try integer("step", json["step"]), lr: try exact("lr", json["lr"]),
                      beta1: try exact("beta1", betas[0]), beta2: try exact("beta2", betas[1]),
                      eps: try exact("eps", json["eps"]), weightDecay: try exact("weight_decay", json["weight_decay"]),
                      parameters: entries)
    }

    private static func readMoment(_ file: SafeTensorsFile, _ name: String, shape: [Int], nonNegative: Bool) throws -> [Float] {
        guard let entry = file.entries[name] else { throw AdamWError.missingTensor(file: file.path, tensor: name) }
        guard entry.dtype == .f32 else { throw AdamWError.wrongDType(file: file.path, tensor: name, dtype: entry.dtype.rawValue) }
        guard entry.shape == shape else {
            throw AdamWError.wrongShape(file: file.path, tensor: name, expected: shape, actual: entry.shape)
        }
        let values: [Float]
        do { values = try file.floats(entry) } catch let e as SafeTensorsError { throw AdamWError.safeTensors(e) }
        if let bad = values.firstIndex(where: { !$0.isFinite || (nonNegative && $0 < 0) }) {
            throw AdamWError.nonFiniteState(file: file.path, tensor: name, index: bad)
        }
        return values
    }
}
