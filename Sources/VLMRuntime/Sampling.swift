import Foundation

/// A seedable generator (xoshiro256**, seeded through SplitMix64): the same seed draws the same
/// tokens on every run and platform.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func mix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (mix(), mix(), mix(), mix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

/// How the next token is chosen. Temperature 0 is greedy (argmax, ties to the lowest id).
public struct SamplingParameters: Sendable, Equatable {
    public var temperature: Float = 0
    public var topP: Float = 1
    /// 0 disables top-k.
    public var topK: Int = 0
    /// 1 disables the penalty (HF semantics: positive logits ÷ p, negative × p).
    public var repetitionPenalty: Float = 1

    public init(temperature: Float = 0, topP: Float = 1, topK: Int = 0, repetitionPenalty: Float = 1) {
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.repetitionPenalty = repetitionPenalty
    }
}

/// Picks tokens from logits in the order transformers applies its processors: repetition
/// penalty, temperature, top-k, top-p, then a draw from the seeded generator.
public struct Sampler: Sendable {
    public var parameters: SamplingParameters
    public var random: SeededRandom

    public init(parameters: SamplingParameters, seed: UInt64) {
        self.parameters = parameters
        self.random = SeededRandom(seed: seed)
    }

    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var bestValue = -Float.infinity
        for (i, v) in logits.enumerated() where v > bestValue { best = i; bestValue = v }
        return best
    }

    /// `history`: the ids already in the sequence (prompt and generated), for the penalty.
    public mutating func next(logits: UnsafeBufferPointer<Float>, history: [Int]) -> Int {
        let p = parameters
        if p.repetitionPenalty == 1 && p.temperature <= 0 { return Self.argmax(logits) }
        var l = Array(logits)
        if p.repetitionPenalty != 1 {
            for id in Set(history) where id >= 0 && id < l.count {
                l[id] = l[id] > 0 ? l[id] / p.repetitionPenalty : l[id] * p.repetitionPenalty
            }
        }
        if p.temperature <= 0 { return l.withUnsafeBufferPointer { Self.argmax($0) } }
        for i in 0..<l.count { l[i] /= p.temperature }
        var order = Array(0..<l.count)
        order.sort { l[$0] > l[$1] || (l[$0] == l[$1] && $0 < $1) }
        if p.topK > 0 && p.topK < order.count { order.removeSubrange(p.topK...) }
        let mx = l[order[0]]
        var probs = order.map { Double(expf(l[$0] - mx)) }
        let total = probs.reduce(0, +)
        for i in 0..<probs.count { probs[i] /= total }
        if p.topP < 1 {
            // Keep the smallest prefix whose mass reaches top_p (at least one token).
            var cum = 0.0
            var keep = probs.count
            for (i, q) in probs.enumerated() {
                cum += q
                if cum >= Double(p.topP) { keep = i + 1; break }
            }
            order.removeSubrange(keep...)
            probs.removeSubrange(keep...)
            let s = probs.reduce(0, +)
            for i in 0..<probs.count { probs[i] /= s }
        }
        var u = random.unit()
        for (i, q) in probs.enumerated() {
            u -= q
            if u < 0 { return order[i] }
        }
        return order[order.count - 1]
    }
}
