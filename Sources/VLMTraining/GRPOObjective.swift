import Foundation

// MARK: - Settings

/// How group rewards become per-completion advantages.
public enum AdvantageKind: String, Sendable, CaseIterable, Codable {
    /// TRL `scale_rewards="group"`: (r − mean) / (std + 1e-4), Bessel-corrected std.
    case trl
    /// EasyR1 / verl: (r − mean) / (std + 1e-6), Bessel-corrected std (`torch.std`).
    case easyr1
    /// Dr. GRPO / TRL `scale_rewards="none"`: r − mean.
    case none
}

/// The per-token policy-gradient term.
public enum PolicyLossKind: String, Sendable, CaseIterable, Codable {
    /// TRL: −min(ρA, clip(ρ, 1−ε_low, 1+ε_high)A) (+ β·k3).
    case trl
    /// EasyR1 / verl: the clipped surrogate with the log-ratio clamped to ±20 and, for A < 0, the
    /// dual-clip bound c·A; KL is `low_var_kl` (k3 with clamps).
    case easyr1
}

/// How per-token losses become one number.
public enum LossAggregation: String, Sendable, CaseIterable, Codable {
    /// Token mean over the whole group (TRL "dapo" with one process = "bnpo" = verl/EasyR1 "token-mean").
    case dapo
    /// Mean over completions of each completion's token mean ("seq-mean-token-mean", the paper's form).
    case grpo
    /// Sum over every token divided by G · max_completion_length (Dr. GRPO, "seq-mean-token-sum-norm").
    case drGRPO = "dr_grpo"
}

/// The constants of one GRPO update. The defaults are the golden fixture's primary loss:
/// TRL advantages, TRL loss, "dapo", β = 0.04, ε = 0.2 / 0.28, T = 1, max completion length 32.
///
/// Hyper-parameters are `Double`, as they are Python floats in TRL and EasyR1; they enter the
/// float32 arithmetic the way torch casts a Python scalar: `Float(1 - epsilonLow)`,
/// `Float(log(1 + epsilonHigh))`, `Float(beta)`.
public struct GRPOSettings: Sendable, Equatable {
    /// Sampling temperature. The objective does not use it: the caller divides the logits by it
    /// before the log-softmax that produces `logprobs`. It travels with the batch so that the
    /// rollout and the loss agree.
    public var temperature: Float
    public var advantage: AdvantageKind
    public var policyLoss: PolicyLossKind
    public var aggregation: LossAggregation
    /// KL weight. 0 means no reference log-probs are needed.
    public var beta: Double
    public var epsilonLow: Double
    public var epsilonHigh: Double
    /// EasyR1's dual-clip constant c (`clip_ratio_dual`); used by `PolicyLossKind.easyr1` only.
    public var dualClip: Double
    /// The normaliser of `LossAggregation.drGRPO` (TRL's `max_completion_length`).
    public var maxCompletionLength: Int

    public init(temperature: Float = 1.0, advantage: AdvantageKind = .trl, policyLoss: PolicyLossKind = .trl,
                aggregation: LossAggregation = .dapo, beta: Double = 0.04, epsilonLow: Double = 0.2,
                epsilonHigh: Double = 0.28, dualClip: Double = 3.0, maxCompletionLength: Int = 32) {
        self.temperature = temperature
        self.advantage = advantage
        self.policyLoss = policyLoss
        self.aggregation = aggregation
        self.beta = beta
        self.epsilonLow = epsilonLow
        self.epsilonHigh = epsilonHigh
        self.dualClip = dualClip
        self.maxCompletionLength = maxCompletionLength
    }
}

// MARK: - Result and errors

/// Everything one evaluation of the objective produces. Per-token arrays are indexed like the
/// input: `[completion][token]`, each of the completion's real length.
public struct GRPOLossResult: Sendable {
    public var loss: Float
    /// ∂loss/∂logprobs[i][t]: the exact derivative of the formula as torch autograd computes it
    /// (zero through active clamps; at exact ties torch.minimum / maximum give half the
    /// gradient to each input).
    public var dLogprobs: [[Float]]
    /// Policy term plus β·KL per token (before aggregation).
    public var perTokenLoss: [[Float]]
    /// TRL: exp(logp − old). EasyR1: exp(clamp(logp − old, −20, 20)).
    public var ratio: [[Float]]
    /// TRL: clamp(ρ, 1−ε_low, 1+ε_high). EasyR1: exp(clamp(logp − old, log(1−ε_low), log(1+ε_high))).
    public var ratioClipped: [[Float]]
    /// TRL: k3 = exp(ref − logp) − (ref − logp) − 1. EasyR1: the clamped `low_var_kl`.
    /// All zero when no reference log-probs were given.
    public var perTokenKL: [[Float]]
    /// TRL `is_low_clipped`: ρ < 1−ε_low and A < 0 (ρ = exp(logp − old), whatever the loss form).
    public var lowClippedMask: [[Bool]]
    /// TRL `is_high_clipped`: ρ > 1+ε_high and A > 0.
    public var highClippedMask: [[Bool]]
    /// EasyR1 dual clip active: A < 0 and max(−Aρ, −Aρ_clipped) > −c·A, i.e. the c·A branch is chosen
    /// (evaluated with the EasyR1 ratios whatever the loss form).
    public var dualClippedMask: [[Bool]]
    public var lowClipped: Int
    public var highClipped: Int
    public var dualClipped: Int
    /// Mean and maximum of `perTokenKL` over all tokens (0 without tokens or reference).
    public var meanKL: Float
    public var maxKL: Float
    /// Σ L_i.
    public var tokenCount: Int
}

/// Why the objective could not be evaluated. Every case says which input was wrong.
public enum GRPOObjectiveError: Error, Equatable, CustomStringConvertible {
    case emptyGroup
    /// `field` ("old", "ref" or "advantages") has a different number of completions than `logprobs`.
    case completionCountMismatch(field: String, expected: Int, actual: Int)
    /// Completion `completion` of `field` has `actual` tokens where `logprobs` has `expected`.
    case lengthMismatch(completion: Int, field: String, expected: Int, actual: Int)
    /// β ≠ 0 needs reference log-probs.
    case missingReference(beta: Double)
    case invalidSetting(name: String, value: String, reason: String)

    public var description: String {
        switch self {
        case .emptyGroup: return "GRPO objective: the group has no completions"
        case .completionCountMismatch(let f, let e, let a):
            return "GRPO objective: '\(f)' has \(a) completions, logprobs has \(e)"
        case .lengthMismatch(let i, let f, let e, let a):
            return "GRPO objective: completion \(i): '\(f)' has \(a) tokens, logprobs has \(e)"
        case .missingReference(let b): return "GRPO objective: beta = \(b) needs reference log-probs (ref is nil)"
        case .invalidSetting(let n, let v, let r): return "GRPO objective: setting \(n) = \(v): \(r)"
        }
    }
}

// MARK: - Objective

/// The GRPO objective on per-token log-probs: group advantages, the TRL and EasyR1 clipped
/// surrogates with k3 KL, the three aggregations, and the exact gradient with respect to the
/// log-probs (which the model's backward pass then carries to the parameters).
///
/// The specification is the golden fixture `qwen2_5_vl_tiny/index.json` → `grpo.formulas`.
/// Per-token values are computed in float32 in torch's operation order; sums are accumulated in
/// Float64 (torch sums float32 pairwise, so the last bits of a loss may differ).
public enum GRPOObjective {
    /// Per-completion advantages of one group, in float32 as torch computes them:
    /// mean = Σr / n, std = sqrt(Σ(r − mean)² / (n − 1)), A = (r − mean) / (std + ε).
    ///
    /// A group of one has no Bessel-corrected std (torch gives NaN, EasyR1 asserts n > 1); here
    /// its advantage is 0 for every kind, since r − mean = 0 and a lone completion carries no
    /// relative signal. An empty group gives [].
    public static func advantages(rewards: [Float], kind: AdvantageKind) -> [Float] {
        let n = rewards.count
        if n == 0 { return [] }
        if n == 1 { return [0] }
        var sum = 0.0
        for r in rewards { sum += Double(r) }
        let mean = Float(sum) / Float(n)
        let centred = rewards.map { $0 - mean }
        if kind == .none { return centred }
        var squares = 0.0
        for d in centred { squares += Double(d) * Double(d) }
        let std = (Float(squares) / Float(n - 1)).squareRoot()
        let eps: Float = kind == .trl ? 1e-4 : 1e-6
        let scale = std + eps
        return centred.map { $0 / scale }
    }

    /// Evaluates the loss of one group and its gradient with respect to `logprobs`.
    ///
    /// - Parameters:
    ///   - logprobs: per completion, the per-token log-probs of the current policy (length L_i, no padding).
    ///   - old: the behaviour policy's log-probs; nil means `logprobs` detached (ρ ≡ 1, μ = 1).
    ///   - ref: the reference policy's log-probs; required when β ≠ 0.
    ///   - advantages: one per completion (see `advantages(rewards:kind:)`).
    ///
    /// Aggregations: TRL "dapo" divides by max(Σ L_i, 1) and "grpo" by max(L_i, 1) per completion
    /// (TRL clamps both). EasyR1 token-mean (`dapo`) divides by Σ L_i + 1e-8 and seq-mean (`grpo`)
    /// by L_i + 1e-8, its `loss = agg(pg) + β·agg(kl)`; EasyR1 has no dr_grpo mode, so `drGRPO`
    /// with the EasyR1 form is Σ(pg + β·kl) / (G · maxCompletionLength) as in TRL.
    public static func evaluate(logprobs: [[Float]], old: [[Float]]?, ref: [[Float]]?, advantages: [Float],
                                settings: GRPOSettings) throws -> GRPOLossResult {
        let lengths = logprobs.map(\.count)
        try validate(lengths: lengths, old: old, ref: ref, advantages: advantages, settings: settings)
        let weights = aggregationWeights(lengths: lengths, settings: settings)
        let constants = TokenConstants(settings)
        let tokens = logprobs.indices.map { i in
            logprobs[i].indices.map { k in
                term(logprobs[i][k], old: old?[i][k], ref: ref?[i][k], advantage: advantages[i], constants, settings.policyLoss)
            }
        }
        return assemble(tokens, weights: weights, hasRef: ref != nil, settings: settings)
    }

    /// ∂loss/∂logp of each token as a function of that token's log-prob alone, for a backward pass
    /// that evaluates the head in chunks and never holds every logit (`PolicyModel.backward(…,
    /// gradient:)`): a token's derivative depends only on its own log-prob, its old and reference
    /// log-probs, its completion's advantage and the aggregation weight, which the lengths fix.
    /// For the same log-probs it returns exactly `evaluate(…).dLogprobs` (times `scale`, applied in
    /// float32 as a caller scaling those rows would).
    public static func tokenGradient(lengths: [Int], old: [[Float]]?, ref: [[Float]]?, advantages: [Float],
                                     settings: GRPOSettings, scale: Float = 1) throws -> TokenGradient {
        try validate(lengths: lengths, old: old, ref: ref, advantages: advantages, settings: settings)
        let weights = aggregationWeights(lengths: lengths, settings: settings)
        let constants = TokenConstants(settings)
        let kind = settings.policyLoss, beta = Float(settings.beta)
        return TokenGradient { i, k, lp in
            let t = term(lp, old: old?[i][k], ref: ref?[i][k], advantage: advantages[i], constants, kind)
            let d = combined(dPolicy: t.dPolicy, dKL: t.dKL, beta: beta, weight: weights[i])
            return d * scale
        }
    }

    // MARK: Validation

    private static func validate(lengths: [Int], old: [[Float]]?, ref: [[Float]]?, advantages: [Float],
                                 settings: GRPOSettings) throws {
        guard !lengths.isEmpty else { throw GRPOObjectiveError.emptyGroup }
        let g = lengths.count
        guard advantages.count == g else {
            throw GRPOObjectiveError.completionCountMismatch(field: "advantages", expected: g, actual: advantages.count)
        }
        for (field, rows) in [("old", old), ("ref", ref)] {
            guard let rows else { continue }
            guard rows.count == g else {
                throw GRPOObjectiveError.completionCountMismatch(field: field, expected: g, actual: rows.count)
            }
            for i in 0..<g where rows[i].count != lengths[i] {
                throw GRPOObjectiveError.lengthMismatch(completion: i, field: field, expected: lengths[i],
                                                        actual: rows[i].count)
            }
        }
        guard settings.beta.isFinite else {
            throw GRPOObjectiveError.invalidSetting(name: "beta", value: "\(settings.beta)", reason: "must be finite")
        }
        if settings.beta != 0 && ref == nil { throw GRPOObjectiveError.missingReference(beta: settings.beta) }
        guard settings.epsilonLow >= 0, settings.epsilonLow < 1 else {
            throw GRPOObjectiveError.invalidSetting(name: "epsilonLow", value: "\(settings.epsilonLow)",
                                                    reason: "must lie in [0, 1)")
        }
        guard settings.epsilonHigh >= 0, settings.epsilonHigh.isFinite else {
            throw GRPOObjectiveError.invalidSetting(name: "epsilonHigh", value: "\(settings.epsilonHigh)",
                                                    reason: "must be finite and ≥ 0")
        }
        if settings.policyLoss == .easyr1 {
            guard settings.dualClip > 1, settings.dualClip.isFinite else {
                throw GRPOObjectiveError.invalidSetting(name: "dualClip", value: "\(settings.dualClip)",
                                                        reason: "EasyR1's dual-clip constant must be finite and > 1")
            }
        }
        if settings.aggregation == .drGRPO {
            guard settings.maxCompletionLength > 0 else {
                throw GRPOObjectiveError.invalidSetting(name: "maxCompletionLength", value: "\(settings.maxCompletionLength)",
                                                        reason: "dr_grpo divides by G · maxCompletionLength, so it must be > 0")
            }
        }
    }

    // MARK: Aggregation

    /// d loss / d perToken for each completion (the same for every token of a completion).
    private static func aggregationWeights(lengths: [Int], settings: GRPOSettings) -> [Double] {
        let g = Float(lengths.count)
        let total = lengths.reduce(0, +)
        switch (settings.policyLoss, settings.aggregation) {
        case (.trl, .dapo):
            return lengths.map { _ in 1 / Double(Float(max(total, 1))) }
        case (.trl, .grpo):
            return lengths.map { 1 / (Double(g) * Double(Float(max($0, 1)))) }
        case (.easyr1, .dapo):
            let denominator = Float(total) + Float(1e-8)
            return lengths.map { _ in 1 / Double(denominator) }
        case (.easyr1, .grpo):
            return lengths.map { 1 / (Double(g) * Double(Float($0) + Float(1e-8))) }
        case (_, .drGRPO):
            let denominator = Float(lengths.count * settings.maxCompletionLength)
            return lengths.map { _ in 1 / Double(denominator) }
        }
    }

    // MARK: Per-token terms

    /// One token's values and the derivatives of its policy and KL terms.
    private struct TokenTerm {
        var policy: Float, dPolicy: Float, kl: Float, dKL: Float
        var ratio: Float, ratioClipped: Float
        var low: Bool, high: Bool, dual: Bool
    }

    /// The settings' clip bounds in float32, computed once.
    private struct TokenConstants {
        let lowBound: Float, highBound: Float, logLow: Float, logHigh: Float, c: Float
        init(_ s: GRPOSettings) {
            lowBound = Float(1 - s.epsilonLow)
            highBound = Float(1 + s.epsilonHigh)
            logLow = Float(Foundation.log(1 - s.epsilonLow))
            logHigh = Float(Foundation.log(1 + s.epsilonHigh))
            c = Float(s.dualClip)
        }
    }

    /// ∂loss/∂logp of one token: (dPolicy + β·dKL) times its aggregation weight, in the order
    /// `assemble` uses.
    @inline(__always)
    private static func combined(dPolicy: Float, dKL: Float, beta: Float, weight w: Double) -> Float {
        let d = beta != 0 ? Double(dPolicy) + Double(beta) * Double(dKL) : Double(dPolicy)
        return Float(d * w)
    }

    /// torch.minimum / maximum backward: the chosen input gets the gradient, ties split it.
    @inline(__always)
    private static func minWeights(_ a: Float, _ b: Float) -> (Float, Float) {
        a < b ? (1, 0) : (a > b ? (0, 1) : (0.5, 0.5))
    }

    @inline(__always)
    private static func maxWeights(_ a: Float, _ b: Float) -> (Float, Float) {
        a > b ? (1, 0) : (a < b ? (0, 1) : (0.5, 0.5))
    }

    @inline(__always)
    private static func clamp(_ x: Float, _ lo: Float, _ hi: Float) -> Float { Swift.min(Swift.max(x, lo), hi) }

    /// torch.clamp passes the gradient where lo ≤ x ≤ hi (bounds included).
    @inline(__always)
    private static func passes(_ x: Float, _ lo: Float, _ hi: Float) -> Float { (x >= lo && x <= hi) ? 1 : 0 }

    private static func term(_ lp: Float, old: Float?, ref: Float?, advantage a: Float, _ k: TokenConstants,
                             _ kind: PolicyLossKind) -> TokenTerm {
        let logRatio = old.map { lp - $0 } ?? 0
        let negA = -a
        // Statistics shared by both forms: TRL clip masks on the plain ratio, EasyR1 dual clip.
        let rho = Foundation.exp(logRatio)
        let easyRatio = Foundation.exp(clamp(logRatio, -20, 20))
        let easyClipped = Foundation.exp(clamp(logRatio, k.logLow, k.logHigh))
        let easyHi = Swift.max(negA * easyRatio, negA * easyClipped)
        var t = TokenTerm(policy: 0, dPolicy: 0, kl: 0, dKL: 0, ratio: 0, ratioClipped: 0,
                          low: rho < k.lowBound && a < 0, high: rho > k.highBound && a > 0, dual: a < 0 && easyHi > negA * k.c)
        switch kind {
        case .trl:
            let rc = clamp(rho, k.lowBound, k.highBound)
            let x = rho * a, y = rc * a
            let (wx, wy) = minWeights(x, y)
            t.policy = -Swift.min(x, y)
            // d rho / d logp = rho (also when old is nil: old = logp.detach()).
            t.dPolicy = -(wx * a * rho + wy * a * passes(rho, k.lowBound, k.highBound) * rho)
            t.ratio = rho
            t.ratioClipped = rc
        case .easyr1:
            let pg1 = negA * easyRatio, pg2 = negA * easyClipped, pg3 = negA * k.c
            let (w1, w2) = maxWeights(pg1, pg2)
            let (wHi, _) = minWeights(easyHi, pg3)
            let select: Float = a < 0 ? wHi : 1
            let dRatio = passes(logRatio, -20, 20) * easyRatio
            let dClipped = passes(logRatio, k.logLow, k.logHigh) * easyClipped
            t.policy = a < 0 ? Swift.min(easyHi, pg3) : easyHi
            t.dPolicy = select * (w1 * negA * dRatio + w2 * negA * dClipped)
            t.ratio = easyRatio
            t.ratioClipped = easyClipped
        }

        guard let ref else { return t }
        let diff = ref - lp
        switch kind {
        case .trl:
            let e = Foundation.exp(diff)
            t.kl = e - diff - 1
            t.dKL = 1 - e  // d/dlogp of exp(ref − logp) − (ref − logp) − 1
        case .easyr1:
            let d = clamp(diff, -20, 20)
            let e = Foundation.exp(d)
            let raw = e - d - 1
            t.kl = clamp(raw, -10, 10)
            t.dKL = passes(raw, -10, 10) * passes(diff, -20, 20) * (1 - e)
        }
        return t
    }

    // MARK: Assembly

    private static func assemble(_ terms: [[TokenTerm]], weights: [Double], hasRef: Bool,
                                 settings s: GRPOSettings) -> GRPOLossResult {
        let beta = Float(s.beta)
        var policySum = 0.0, klSum = 0.0, klTotal = 0.0
        var klMax = -Float.infinity
        var perToken = [[Float]](), grads = [[Float]]()
        for (i, row) in terms.enumerated() {
            let w = weights[i]
            var rowLoss = [Float](), rowGrad = [Float]()
            rowLoss.reserveCapacity(row.count); rowGrad.reserveCapacity(row.count)
            for t in row {
                let withKL = beta != 0 ? t.policy + beta * t.kl : t.policy
                rowLoss.append(withKL)
                rowGrad.append(combined(dPolicy: t.dPolicy, dKL: t.dKL, beta: beta, weight: w))
                switch s.policyLoss {
                case .trl: policySum += Double(withKL) * w
                case .easyr1:
                    policySum += Double(t.policy) * w
                    klSum += Double(t.kl) * w
                }
                klTotal += Double(t.kl)
                klMax = Swift.max(klMax, t.kl)
            }
            perToken.append(rowLoss)
            grads.append(rowGrad)
        }
        let loss: Float = s.policyLoss == .easyr1 && beta != 0
            ? Float(policySum) + beta * Float(klSum)
            : Float(policySum)
        let tokenCount = terms.reduce(0) { $0 + $1.count }
        let hasTokens = tokenCount > 0 && hasRef
        func each<T>(_ field: (TokenTerm) -> T) -> [[T]] { terms.map { $0.map(field) } }
        func count(_ flag: (TokenTerm) -> Bool) -> Int { terms.reduce(0) { $0 + $1.filter(flag).count } }
        return GRPOLossResult(
            loss: loss, dLogprobs: grads, perTokenLoss: perToken,
            ratio: each(\.ratio), ratioClipped: each(\.ratioClipped), perTokenKL: each(\.kl),
            lowClippedMask: each(\.low), highClippedMask: each(\.high), dualClippedMask: each(\.dual),
            lowClipped: count(\.low), highClipped: count(\.high), dualClipped: count(\.dual),
            meanKL: hasTokens ? Float(klTotal / Double(tokenCount)) : 0,
            maxKL: hasTokens ? klMax : 0,
            tokenCount: tokenCount)
    }
}

/// ∂loss/∂logp of token `t` of completion `i` given its log-prob (`GRPOObjective.tokenGradient`).
/// Called from the head's worker threads, so it only reads what it captured.
public struct TokenGradient: Sendable {
    let f: @Sendable (_ completion: Int, _ token: Int, _ logprob: Float) -> Float
    public init(_ f: @escaping @Sendable (_ completion: Int, _ token: Int, _ logprob: Float) -> Float) { self.f = f }
    public func callAsFunction(_ completion: Int, _ token: Int, _ logprob: Float) -> Float { f(completion, token, logprob) }
}
