import AssayTestSupport
import Foundation
import VLMRuntime
import XCTest
@testable import VLMTraining

/// The golden GRPO fixture of `qwen2_5_vl_tiny`: [G, Lmax] tensors unpadded with `grpo/completion_mask`.
struct GRPOGoldens {
    let file: SafeTensorsFile
    let grpo: [String: Any]
    let lengths: [Int]
    let lmax: Int

    static func load() throws -> GRPOGoldens {
        let url = try Fixtures.require("goldens/qwen2_5_vl_tiny/goldens.safetensors")
        let indexURL = try Fixtures.require("goldens/qwen2_5_vl_tiny/index.json")
        let file = try SafeTensorsFile(path: url.path)
        let index = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: indexURL)) as? [String: Any])
        let grpo = try XCTUnwrap(index["grpo"] as? [String: Any])
        let shape = try XCTUnwrap(file.entries["grpo/completion_mask"]?.shape)
        let mask = try file.floats("grpo/completion_mask")
        let lmax = shape[1]
        let lengths = (0..<shape[0]).map { i in mask[i * lmax..<(i + 1) * lmax].filter { $0 != 0 }.count }
        return GRPOGoldens(file: file, grpo: grpo, lengths: lengths, lmax: lmax)
    }

    func vector(_ name: String) throws -> [Float] { try file.floats(name) }

    /// A [G, Lmax] tensor cut to each completion's real length.
    func rows(_ name: String) throws -> [[Float]] {
        let flat = try file.floats(name)
        return lengths.enumerated().map { i, n in Array(flat[i * lmax..<i * lmax + n]) }
    }

    func section(_ key: String) throws -> [String: Any] { try XCTUnwrap(grpo[key] as? [String: Any], key) }

    func scalar(_ key: String) throws -> Double {
        try XCTUnwrap((try section("scalars")[key] as? NSNumber)?.doubleValue, key)
    }
}

/// Tracks the largest deviation of a comparison and fails beyond atol + rtol·|want|.
struct Deviation {
    var label: String
    var atol: Double = 1e-4
    var rtol: Double = 1e-4
    private(set) var max = 0.0
    private(set) var count = 0

    init(_ label: String, atol: Double = 1e-4, rtol: Double = 1e-4) {
        self.label = label; self.atol = atol; self.rtol = rtol
    }

    mutating func check(_ got: Double, _ want: Double, _ what: @autoclosure () -> String,
                        file: StaticString = #filePath, line: UInt = #line) {
        let d = abs(got - want)
        max = Swift.max(max, d.isNaN ? .infinity : d)
        count += 1
        if !(d <= atol + rtol * abs(want)) {
            XCTFail("\(label) \(what()): got \(got), want \(want) (|Δ| = \(d))", file: file, line: line)
        }
    }

    func report() { print("[golden] \(label): \(count) values, max |Δ| = \(max)") }
}

final class GRPOObjectiveTests: XCTestCase {
    // MARK: Advantages

    func testAdvantagesOfEveryKindMatchTheGoldens() throws {
        let g = try GRPOGoldens.load()
        let rewards = try g.vector("grpo/rewards")
        for kind in AdvantageKind.allCases {
            let want = try g.vector("grpo/advantages_\(kind.rawValue)")
            let got = GRPOObjective.advantages(rewards: rewards, kind: kind)
            XCTAssertEqual(got.count, want.count)
            var dev = Deviation("advantages_\(kind.rawValue)", atol: 1e-6, rtol: 0)
            for (a, b) in zip(got, want) { dev.check(Double(a), Double(b), "") }
            dev.report()
        }
    }

    func testAdvantagesOfDegenerateGroupsAreZeroNotNaN() {
        for kind in AdvantageKind.allCases {
            XCTAssertEqual(GRPOObjective.advantages(rewards: [], kind: kind), [])
            XCTAssertEqual(GRPOObjective.advantages(rewards: [0.7], kind: kind), [0])
            XCTAssertEqual(GRPOObjective.advantages(rewards: [0.5, 0.5, 0.5], kind: kind), [0, 0, 0])
        }
    }

    // MARK: Stage-1 losses

    /// Settings and advantages a `losses_stage1` key names, as make_goldens.py builds them:
    /// `trl_adv-<advantage>_<aggregation>_beta<β>` (TRL loss) and
    /// `easyr1_dualclip_<token|seq>-mean_beta<β>` (EasyR1 loss, EasyR1 advantages).
    static func settings(forLossKey key: String) throws -> GRPOSettings {
        var s = GRPOSettings()
        let parts = key.components(separatedBy: "_beta")
        let beta = try XCTUnwrap(Double(try XCTUnwrap(parts.last)), key)
        s.beta = beta
        if key.hasPrefix("trl_adv-") {
            let rest = parts[0].dropFirst("trl_adv-".count)
            let advantage = String(rest.prefix { $0 != "_" })
            let aggregation = String(rest.dropFirst(advantage.count + 1))
            s.advantage = try XCTUnwrap(AdvantageKind(rawValue: advantage), key)
            s.aggregation = try XCTUnwrap(LossAggregation(rawValue: aggregation), key)
            s.policyLoss = .trl
        } else {
            XCTAssertTrue(key.hasPrefix("easyr1_dualclip_"), key)
            s.advantage = .easyr1
            s.policyLoss = .easyr1
            s.aggregation = parts[0].hasSuffix("token-mean") ? .dapo : .grpo
            XCTAssertTrue(parts[0].hasSuffix("token-mean") || parts[0].hasSuffix("seq-mean"), key)
        }
        return s
    }

    func testEveryStage1LossMatchesTheGolden() throws {
        let g = try GRPOGoldens.load()
        let lp = try g.rows("grpo/stage1/logp_t1"), old = try g.rows("grpo/stage1/old_logp")
        let ref = try g.rows("grpo/stage1/ref_logp")
        let rewards = try g.vector("grpo/rewards")
        let losses = try g.section("losses_stage1")
        XCTAssertEqual(losses.count, 22)
        var dev = Deviation("losses_stage1")
        for (key, value) in losses.sorted(by: { $0.key < $1.key }) {
            var s = try Self.settings(forLossKey: key)
            s.maxCompletionLength = g.lmax
            let advantages = GRPOObjective.advantages(rewards: rewards, kind: s.advantage)
            let r = try GRPOObjective.evaluate(logprobs: lp, old: old, ref: ref, advantages: advantages, settings: s)
            dev.check(Double(r.loss), try XCTUnwrap(value as? NSNumber).doubleValue, key)
        }
        dev.report()
    }

    func testStage1PerTokenTensorsCountsAndKLMatchTheGoldens() throws {
        let g = try GRPOGoldens.load()
        let lp = try g.rows("grpo/stage1/logp_t1"), old = try g.rows("grpo/stage1/old_logp")
        let ref = try g.rows("grpo/stage1/ref_logp")
        let rewards = try g.vector("grpo/rewards")
        let trlA = GRPOObjective.advantages(rewards: rewards, kind: .trl)
        var primary = GRPOSettings()
        primary.maxCompletionLength = g.lmax
        XCTAssertEqual(primary.beta, 0.04)
        let r = try GRPOObjective.evaluate(logprobs: lp, old: old, ref: ref, advantages: trlA, settings: primary)
        var noKL = primary
        noKL.beta = 0
        let r0 = try GRPOObjective.evaluate(logprobs: lp, old: old, ref: ref, advantages: trlA, settings: noKL)

        func compare(_ got: [[Float]], _ name: String) throws {
            let want = try g.rows(name)
            var dev = Deviation(name)
            for i in want.indices {
                XCTAssertEqual(got[i].count, want[i].count, name)
                for (t, (a, b)) in zip(got[i], want[i]).enumerated() { dev.check(Double(a), Double(b), "[\(i), \(t)]") }
            }
            dev.report()
        }
        try compare(r.ratio, "grpo/stage1/ratio")
        try compare(r.ratioClipped, "grpo/stage1/ratio_clipped")
        try compare(r.perTokenKL, "grpo/stage1/per_token_kl")
        try compare(r.perTokenLoss, "grpo/stage1/per_token_loss_beta0.04")
        try compare(r0.perTokenLoss, "grpo/stage1/per_token_loss_beta0")
        let asFloat = { (m: [[Bool]]) in m.map { $0.map { $0 ? Float(1) : 0 } } }
        try compare(asFloat(r.lowClippedMask), "grpo/stage1/low_clipped")
        try compare(asFloat(r.highClippedMask), "grpo/stage1/high_clipped")

        var easy = GRPOSettings(policyLoss: .easyr1, beta: 0)
        easy.advantage = .easyr1
        let easyA = GRPOObjective.advantages(rewards: rewards, kind: .easyr1)
        let e = try GRPOObjective.evaluate(logprobs: lp, old: old, ref: ref, advantages: easyA, settings: easy)
        try compare(asFloat(e.dualClippedMask), "grpo/stage1/easyr1_dual_clipped")

        XCTAssertEqual(r.lowClipped, Int(try g.scalar("stage1_count_low_clipped")))
        XCTAssertEqual(r.highClipped, Int(try g.scalar("stage1_count_high_clipped")))
        XCTAssertEqual(e.dualClipped, Int(try g.scalar("stage1_count_dual_clipped")))
        XCTAssertEqual([r.lowClipped, r.highClipped, e.dualClipped], [3, 4, 1])
        var dev = Deviation("stage1 scalars")
        dev.check(Double(r.meanKL), try g.scalar("stage1_mean_kl"), "stage1_mean_kl")
        dev.check(Double(r.maxKL), try g.scalar("stage1_max_kl"), "stage1_max_kl")
        dev.check(Double(r.loss), try g.scalar("stage1_primary_loss"), "stage1_primary_loss")
        dev.report()
        // The EasyR1 KL clamps at 10: the golden's largest k3 (11.03) is above it.
        var easyKL = easy
        easyKL.beta = 0.04
        let ek = try GRPOObjective.evaluate(logprobs: lp, old: old, ref: ref, advantages: easyA, settings: easyKL)
        XCTAssertEqual(ek.maxKL, 10)
    }

    func testStage0LossWithoutOldLogprobsMatchesTheGoldenAndIsREINFORCE() throws {
        let g = try GRPOGoldens.load()
        let lp = try g.rows("grpo/stage0/logp_t1")
        let rewards = try g.vector("grpo/rewards")
        let a = GRPOObjective.advantages(rewards: rewards, kind: .trl)
        let s = GRPOSettings(beta: 0, maxCompletionLength: g.lmax)
        let r = try GRPOObjective.evaluate(logprobs: lp, old: nil, ref: nil, advantages: a, settings: s)
        var dev = Deviation("stage0 loss")
        dev.check(Double(r.loss), try g.scalar("stage0_loss_dapo_beta0_trl"), "stage0_loss_dapo_beta0_trl")
        dev.report()
        let n = Float(lp.reduce(0) { $0 + $1.count })
        for i in lp.indices {
            XCTAssertEqual(r.ratio[i], [Float](repeating: 1, count: lp[i].count))
            // ρ ≡ 1 ties both sides of the min; torch splits the gradient and the clamp passes it,
            // so the whole −A/N arrives.
            for d in r.dLogprobs[i] { XCTAssertEqual(d, -a[i] / n, accuracy: 1e-9) }
        }
        XCTAssertEqual(r.meanKL, 0)
        XCTAssertEqual(r.lowClipped + r.highClipped + r.dualClipped, 0)
    }

    // MARK: Gradients

    func testGradientsEqualFiniteDifferencesForEveryFormAggregationAndBeta() throws {
        let g = try GRPOGoldens.load()
        let lp = try g.rows("grpo/stage1/logp_t1"), old = try g.rows("grpo/stage1/old_logp")
        let ref = try g.rows("grpo/stage1/ref_logp")
        let rewards = try g.vector("grpo/rewards")
        var checked = 0, skipped = 0
        var worst = 0.0
        for form in PolicyLossKind.allCases {
            for aggregation in LossAggregation.allCases {
                for beta in [0.0, 0.04] {
                    let s = GRPOSettings(advantage: form == .trl ? .trl : .easyr1, policyLoss: form,
                                         aggregation: aggregation, beta: beta, maxCompletionLength: g.lmax)
                    let a = GRPOObjective.advantages(rewards: rewards, kind: s.advantage)
                    let r = try GRPOObjective.evaluate(logprobs: lp, old: old, ref: ref, advantages: a, settings: s)
                    let model = DoubleObjective(settings: s, old: old, ref: ref, advantages: a)
                    var x = lp.map { $0.map(Double.init) }
                    XCTAssertEqual(Double(r.loss), model.loss(x), accuracy: 1e-5, "\(form) \(aggregation) \(beta)")
                    let h = 1e-6
                    for i in x.indices {
                        for t in x[i].indices {
                            if model.nearKink(i, t, x[i][t], margin: 1e-4) { skipped += 1; continue }
                            let x0 = x[i][t]
                            x[i][t] = x0 + h
                            let up = model.loss(x)
                            x[i][t] = x0 - h
                            let down = model.loss(x)
                            x[i][t] = x0
                            let fd = (up - down) / (2 * h)
                            let got = Double(r.dLogprobs[i][t])
                            worst = max(worst, abs(got - fd))
                            XCTAssertEqual(got, fd, accuracy: 1e-7 + 1e-4 * abs(fd),
                                           "\(form) \(aggregation) β=\(beta) d/dlogp[\(i)][\(t)]")
                            checked += 1
                        }
                    }
                }
            }
        }
        print("[golden] finite differences: \(checked) token derivatives checked, \(skipped) near a kink skipped, max |Δ| = \(worst)")
        XCTAssertGreaterThan(checked, 12 * 60)
    }

    /// The token-wise form the training pass uses gives exactly `evaluate`'s derivative for every
    /// form, aggregation, β and old/ref presence, scaled in float32 as a caller scaling the rows.
    func testTokenGradientIsEvaluatesDerivativeBitForBit() throws {
        let g = try GRPOGoldens.load()
        let lp = try g.rows("grpo/stage1/logp_t1"), old = try g.rows("grpo/stage1/old_logp")
        let ref = try g.rows("grpo/stage1/ref_logp")
        let rewards = try g.vector("grpo/rewards")
        var compared = 0
        for form in PolicyLossKind.allCases {
            for aggregation in LossAggregation.allCases {
                for (beta, withOld) in [(0.0, false), (0.0, true), (0.04, true)] {
                    let s = GRPOSettings(advantage: form == .trl ? .trl : .easyr1, policyLoss: form,
                                         aggregation: aggregation, beta: beta, maxCompletionLength: g.lmax)
                    let a = GRPOObjective.advantages(rewards: rewards, kind: s.advantage)
                    let o = withOld ? old : nil, r = beta == 0 ? nil : ref
                    let want = try GRPOObjective.evaluate(logprobs: lp, old: o, ref: r, advantages: a, settings: s).dLogprobs
                    for scale: Float in [1, 0.37] {
                        let f = try GRPOObjective.tokenGradient(lengths: lp.map(\.count), old: o, ref: r, advantages: a, settings: s, scale: scale)
                        for i in lp.indices {
                            for t in lp[i].indices {
                                XCTAssertEqual(f(i, t, lp[i][t]).bitPattern, (want[i][t] * scale).bitPattern,
                                               "\(form) \(aggregation) β=\(beta) old=\(withOld) ×\(scale) [\(i)][\(t)]")
                                compared += 1
                            }
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThan(compared, 36 * 60)
        // The same checks as evaluate, before any pass runs.
        XCTAssertThrowsError(try GRPOObjective.tokenGradient(lengths: [3, 2], old: [[0, 0, 0]], ref: nil, advantages: [1, -1],
                                                             settings: GRPOSettings(beta: 0)))
        XCTAssertThrowsError(try GRPOObjective.tokenGradient(lengths: [3, 2], old: nil, ref: nil, advantages: [1, -1],
                                                             settings: GRPOSettings(beta: 0.04)))
    }

    /// At an exact tie torch.minimum gives each input half the gradient: EasyR1's dual clip with
    /// c chosen equal to the ratio, so min(−Aρ, −cA) ties and −cA is a constant.
    func testDualClipTieGetsHalfTheGradientLikeTorch() throws {
        let lp: Float = 1.2
        let ratio = Foundation.exp(lp)
        var s = GRPOSettings(policyLoss: .easyr1, beta: 0, dualClip: Double(ratio))
        s.advantage = .easyr1
        let tie = try GRPOObjective.evaluate(logprobs: [[lp]], old: [[0]], ref: nil, advantages: [-1], settings: s)
        XCTAssertFalse(tie.dualClippedMask[0][0])
        XCTAssertEqual(Double(tie.dLogprobs[0][0]), 0.5 * Double(ratio), accuracy: 1e-6)
        s.dualClip = Double(ratio) * 2  // no tie: the ratio branch takes the whole gradient
        let free = try GRPOObjective.evaluate(logprobs: [[lp]], old: [[0]], ref: nil, advantages: [-1], settings: s)
        XCTAssertEqual(Double(free.dLogprobs[0][0]), Double(ratio), accuracy: 1e-6)
        s.dualClip = 3  // dual clip active: the loss is the constant −cA, no gradient
        let clipped = try GRPOObjective.evaluate(logprobs: [[lp]], old: [[0]], ref: nil, advantages: [-1], settings: s)
        XCTAssertTrue(clipped.dualClippedMask[0][0])
        XCTAssertEqual(clipped.dLogprobs[0][0], 0)
        XCTAssertEqual(clipped.loss, 3, accuracy: 1e-6)
    }

    // MARK: Errors

    func testMismatchedInputsThrowErrorsNamingCompletionAndField() {
        let lp: [[Float]] = [[-1, -2], [-0.5]]
        let s = GRPOSettings()
        XCTAssertThrowsError(try GRPOObjective.evaluate(logprobs: lp, old: [[-1, -2], [-0.5, 0]], ref: lp,
                                                        advantages: [1, -1], settings: s)) {
            XCTAssertEqual($0 as? GRPOObjectiveError, .lengthMismatch(completion: 1, field: "old", expected: 1, actual: 2))
        }
        XCTAssertThrowsError(try GRPOObjective.evaluate(logprobs: lp, old: nil, ref: [[-1], [-0.5]],
                                                        advantages: [1, -1], settings: s)) {
            XCTAssertEqual($0 as? GRPOObjectiveError, .lengthMismatch(completion: 0, field: "ref", expected: 2, actual: 1))
        }
        XCTAssertThrowsError(try GRPOObjective.evaluate(logprobs: lp, old: nil, ref: [[-1, -2]],
                                                        advantages: [1, -1], settings: s)) {
            XCTAssertEqual($0 as? GRPOObjectiveError, .completionCountMismatch(field: "ref", expected: 2, actual: 1))
        }
        XCTAssertThrowsError(try GRPOObjective.evaluate(logprobs: lp, old: nil, ref: lp, advantages: [1], settings: s)) {
            XCTAssertEqual($0 as? GRPOObjectiveError, .completionCountMismatch(field: "advantages", expected: 2, actual: 1))
        }
        XCTAssertThrowsError(try GRPOObjective.evaluate(logprobs: lp, old: nil, ref: nil, advantages: [1, -1], settings: s)) {
            XCTAssertEqual($0 as? GRPOObjectiveError, .missingReference(beta: 0.04))
        }
        XCTAssertThrowsError(try GRPOObjective.evaluate(logprobs: [], old: nil, ref: nil, advantages: [], settings: s)) {
            XCTAssertEqual($0 as? GRPOObjectiveError, .emptyGroup)
        }
        var dr = GRPOSettings(aggregation: .drGRPO, beta: 0)
        dr.maxCompletionLength = 0
        XCTAssertThrowsError(try GRPOObjective.evaluate(logprobs: lp, old: nil, ref: nil, advantages: [1, -1], settings: dr))
        // β = 0 needs no reference.
        XCTAssertNoThrow(try GRPOObjective.evaluate(logprobs: lp, old: nil, ref: nil, advantages: [1, -1],
                                                    settings: GRPOSettings(beta: 0)))
    }

    func testEmptyCompletionsContributeNothing() throws {
        for form in PolicyLossKind.allCases {
            for aggregation in LossAggregation.allCases {
                let s = GRPOSettings(policyLoss: form, aggregation: aggregation, beta: 0)
                let r = try GRPOObjective.evaluate(logprobs: [[], []], old: nil, ref: nil, advantages: [1, -1], settings: s)
                XCTAssertEqual(r.loss, 0)
                XCTAssertTrue(r.loss.isFinite)
            }
        }
    }
}

/// The objective in Float64, written from the formulas in index.json independently of the
/// library, for finite differences.
struct DoubleObjective {
    let settings: GRPOSettings
    let old: [[Double]]
    let ref: [[Double]]
    let advantages: [Double]

    init(settings: GRPOSettings, old: [[Float]], ref: [[Float]], advantages: [Float]) {
        self.settings = settings
        self.old = old.map { $0.map(Double.init) }
        self.ref = ref.map { $0.map(Double.init) }
        self.advantages = advantages.map(Double.init)
    }

    var lo: Double { 1 - settings.epsilonLow }
    var hi: Double { 1 + settings.epsilonHigh }

    func perToken(_ i: Int, _ t: Int, _ lp: Double) -> (pg: Double, kl: Double) {
        let a = advantages[i]
        let lr = lp - old[i][t]
        switch settings.policyLoss {
        case .trl:
            let rho = exp(lr)
            let pg = -min(rho * a, min(max(rho, lo), hi) * a)
            let d = ref[i][t] - lp
            return (pg, exp(d) - d - 1)
        case .easyr1:
            let ratio = exp(min(max(lr, -20), 20))
            let clipped = exp(min(max(lr, log(lo)), log(hi)))
            let upper = max(-a * ratio, -a * clipped)
            let pg = a < 0 ? min(upper, -a * settings.dualClip) : upper
            let d = min(max(ref[i][t] - lp, -20), 20)
            return (pg, min(max(exp(d) - d - 1, -10), 10))
        }
    }

    func loss(_ lp: [[Double]]) -> Double {
        let g = Double(lp.count)
        let total = Double(lp.reduce(0) { $0 + $1.count })
        let easy = settings.policyLoss == .easyr1
        var pgSum = 0.0, klSum = 0.0
        for i in lp.indices {
            let n = Double(lp[i].count)
            let w: Double
            switch settings.aggregation {
            case .dapo: w = easy ? 1 / (total + 1e-8) : 1 / max(total, 1)
            case .grpo: w = easy ? 1 / (g * (n + 1e-8)) : 1 / (g * max(n, 1))
            case .drGRPO: w = 1 / (g * Double(settings.maxCompletionLength))
            }
            for t in lp[i].indices {
                let (pg, kl) = perToken(i, t, lp[i][t])
                pgSum += pg * w
                klSum += kl * w
            }
        }
        return pgSum + settings.beta * klSum
    }

    /// True when a clamp, min or max switches within `margin` of this log-prob.
    func nearKink(_ i: Int, _ t: Int, _ lp: Double, margin: Double) -> Bool {
        let lr = lp - old[i][t]
        var kinks = [log(lo), log(hi)]
        if settings.policyLoss == .easyr1 {
            if advantages[i] < 0 { kinks.append(log(settings.dualClip)) }
            kinks += [-20, 20]
        }
        if kinks.contains(where: { abs(lr - $0) < margin }) { return true }
        if settings.policyLoss == .easyr1 && settings.beta != 0 {
            let d = ref[i][t] - lp
            let k = exp(d) - d - 1
            // k3 reaches 10 where its slope is |e^d − 1| ≤ ~e^3: a margin in k of margin·30.
            if abs(k - 10) < margin * 30 || abs(abs(d) - 20) < margin { return true }
        }
        return false
    }
}

/// The rollouts' nucleus sampler against the definition, on a vocabulary small enough to enumerate.
final class RolloutSamplerTests: XCTestCase {
    func testDrawsFollowTheNucleusDistributionAndReportExactLogprobs() {
        var rng = SeededRandom(seed: 3)
        let logits = (0..<40).map { _ in Float(rng.unit() * 8 - 4) }
        let t: Float = 0.7, topP: Float = 0.9
        // The definition: softmax(l / T), most likely first (ties by id), the smallest prefix reaching top-p.
        let scaled = logits.map { Double($0) / Double(t) }
        let mx = scaled.max() ?? 0
        let z = scaled.reduce(0) { $0 + exp($1 - mx) }
        let p = scaled.map { exp($0 - mx) / z }
        let order = (0..<40).sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }
        var nucleus: [Int] = [], mass = 0.0
        for i in order where mass < Double(topP) { nucleus.append(i); mass += p[i] }
        var counts = [Int](repeating: 0, count: 40)
        var scratch = [Double](repeating: 0, count: 40)
        var random = SeededRandom(seed: 9)
        let draws = 40_000
        for _ in 0..<draws {
            let d = logits.withUnsafeBufferPointer { l in
                scratch.withUnsafeMutableBufferPointer { RolloutSampler.next(l, temperature: t, topP: topP, random: &random, scratch: $0) }
            }
            counts[d.token] += 1
            XCTAssertEqual(Double(d.logprob), log(p[d.token]), accuracy: 1e-6)
        }
        for i in 0..<40 {
            if nucleus.contains(i) {
                let expected = p[i] / mass
                XCTAssertEqual(Double(counts[i]) / Double(draws), expected, accuracy: 4 * (expected * (1 - expected) / Double(draws)).squareRoot() + 1e-3, "token \(i)")
            } else {
                XCTAssertEqual(counts[i], 0, "token \(i) is outside the nucleus")
            }
        }
        let entropy = -p.reduce(0) { $0 + ($1 > 0 ? $1 * log($1) : 0) }
        let d = logits.withUnsafeBufferPointer { l in
            scratch.withUnsafeMutableBufferPointer { RolloutSampler.next(l, temperature: t, topP: 1, random: &random, scratch: $0) }
        }
        XCTAssertEqual(d.entropy, entropy, accuracy: 1e-9)
    }
}
