import Foundation

/// How a suite's headline is computed from its bootstrap units.
public enum HeadlineStatistic: String, Codable, Sendable {
    /// The mean over all units (plain accuracy); Σ value / Σ weight when units carry weights.
    case mean
    /// The unweighted mean over strata of each stratum's mean (BLINK's macro over subtasks), each
    /// stratum's mean being Σ value / Σ weight of its units.
    case macroMean = "macro_mean"
}

/// One resampling unit: an item, or a group of items scored together (an MMVP pair), with the
/// stratum it belongs to (the subtask for macro-averaged suites).
///
/// A stratum's statistic is Σ value / Σ weight over its units. With the default weight 1 that is
/// the plain mean; other weights express ratio metrics exactly, so that their intervals come
/// from the same resampling: POPE's F1 = 2TP / (2TP + FP + FN) gives a true positive value 2 and
/// weight 2, a false positive or negative value 0 and weight 1, a true negative weight 0.
public struct BootstrapUnit: Sendable, Hashable {
    public var id: String
    public var stratum: String
    public var value: Double
    /// The unit's share of the denominator (1 for a plain mean).
    public var weight: Double

    public init(id: String, stratum: String = "", value: Double, weight: Double = 1) {
        self.id = id
        self.stratum = stratum
        self.value = value
        self.weight = weight
    }
}

/// A 95% (or other) interval.
public struct Interval: Codable, Sendable, Hashable {
    public var lower: Double
    public var upper: Double
    public init(_ lower: Double, _ upper: Double) {
        self.lower = lower
        self.upper = upper
    }
    public func contains(_ value: Double) -> Bool { value >= lower && value <= upper }
}

/// Bootstrap, paired bootstrap, McNemar's exact test and the Wilson interval.
public enum Statistics {
    /// The headline of `values` grouped by `strata` under `statistic`, as a fraction.
    public static func headline(_ units: [BootstrapUnit], statistic: HeadlineStatistic) -> Double {
        guard !units.isEmpty else { return 0 }
        switch statistic {
        case .mean:
            return ratio(units.reduce(0) { $0 + $1.value }, units.reduce(0) { $0 + $1.weight })
        case .macroMean:
            var sums: [String: (Double, Double)] = [:]
            for unit in units {
                let current = sums[unit.stratum] ?? (0, 0)
                sums[unit.stratum] = (current.0 + unit.value, current.1 + unit.weight)
            }
            // Summed in a fixed order so equal inputs give bit-equal headlines.
            return sums.keys.sorted().reduce(0) { $0 + ratio(sums[$1]!.0, sums[$1]!.1) } / Double(sums.count)
        }
    }

    /// Σ value / Σ weight, 0 when nothing weighs (an F1 with no positive prediction or gold).
    static func ratio(_ value: Double, _ weight: Double) -> Double {
        weight == 0 ? 0 : value / weight
    }

    /// Percentile bootstrap interval of the headline. Macro means resample within each stratum so
    /// every stratum keeps its size; plain means resample all units.
    public static func bootstrap(
        _ units: [BootstrapUnit], statistic: HeadlineStatistic, resamples: Int = 10_000,
        confidence: Double = 0.95, seed: UInt64 = 0
    ) -> Interval {
        let pairs = units.map {
            ResamplePair(stratum: $0.stratum, base: 0, baseWeight: 0, candidate: $0.value, candidateWeight: $0.weight)
        }
        return resample(pairs, statistic: statistic, resamples: resamples, confidence: confidence, seed: seed)
    }

    /// Percentile interval of `headline(candidate) − headline(base)` over paired resamples: the
    /// same resampled units are used for both runs, so item difficulty cancels out.
    public static func pairedBootstrap(
        base: [BootstrapUnit], candidate: [BootstrapUnit], statistic: HeadlineStatistic,
        resamples: Int = 10_000, confidence: Double = 0.95, seed: UInt64 = 0
    ) -> Interval {
        let candidateByID = Dictionary(candidate.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let pairs = base.compactMap { unit -> ResamplePair? in
            guard let other = candidateByID[unit.id] else { return nil }
            return ResamplePair(stratum: unit.stratum, base: unit.value, baseWeight: unit.weight,
                                candidate: other.value, candidateWeight: other.weight)
        }
        return resample(pairs, statistic: statistic, resamples: resamples, confidence: confidence, seed: seed)
    }

    private struct ResamplePair {
        var stratum: String
        var base: Double
        var baseWeight: Double
        var candidate: Double
        var candidateWeight: Double
    }

    private static func resample(
        _ pairs: [ResamplePair], statistic: HeadlineStatistic,
        resamples: Int, confidence: Double, seed: UInt64
    ) -> Interval {
        guard !pairs.isEmpty, resamples > 0 else { return Interval(0, 0) }
        // Strata in a fixed order so the same seed gives the same draws.
        var strataOrder: [String] = []
        var strata: [String: [ResamplePair]] = [:]
        for pair in pairs {
            let key = statistic == .macroMean ? pair.stratum : ""
            if strata[key] == nil { strataOrder.append(key) }
            strata[key, default: []].append(pair)
        }
        let groups = strataOrder.map { strata[$0] ?? [] }
        // Plain means (every weight 1, or a single run whose base weighs nothing) keep the
        // mean-of-differences arithmetic; ratio metrics need the four sums.
        let unitWeights = pairs.allSatisfy {
            $0.candidateWeight == 1 && ($0.baseWeight == 1 || ($0.baseWeight == 0 && $0.base == 0))
        }
        var generator = SeededGenerator(seed: seed)
        var differences = [Double](repeating: 0, count: resamples)
        for r in 0..<resamples {
            var total = 0.0
            for group in groups {
                let n = group.count
                if unitWeights {
                    var sum = 0.0
                    for _ in 0..<n {
                        let pair = group[generator.nextIndex(below: n)]
                        sum += pair.candidate - pair.base
                    }
                    total += sum / Double(n)
                } else {
                    var base = 0.0, baseWeight = 0.0, candidate = 0.0, candidateWeight = 0.0
                    for _ in 0..<n {
                        let pair = group[generator.nextIndex(below: n)]
                        base += pair.base
                        baseWeight += pair.baseWeight
                        candidate += pair.candidate
                        candidateWeight += pair.candidateWeight
                    }
                    total += ratio(candidate, candidateWeight) - ratio(base, baseWeight)
                }
            }
            differences[r] = total / Double(groups.count)
        }
        differences.sort()
        let alpha = (1 - confidence) / 2
        return Interval(percentile(differences, alpha), percentile(differences, 1 - alpha))
    }

    /// Percentile bootstrap interval of the mean over suites of each suite's headline (an
    /// "average over benchmarks" figure): every resample draws each suite's units again, within
    /// strata for macro-mean suites, independently of the other suites.
    public static func bootstrapMeanOfHeadlines(
        _ suites: [(units: [BootstrapUnit], statistic: HeadlineStatistic)], resamples: Int = 10_000,
        confidence: Double = 0.95, seed: UInt64 = 0
    ) -> Interval {
        let present = suites.filter { !$0.units.isEmpty }
        guard !present.isEmpty, resamples > 0 else { return Interval(0, 0) }
        // Strata in first-appearance order so the same seed gives the same draws.
        let grouped: [[[BootstrapUnit]]] = present.map { suite in
            var order: [String] = []
            var groups: [String: [BootstrapUnit]] = [:]
            for unit in suite.units {
                let key = suite.statistic == .macroMean ? unit.stratum : ""
                if groups[key] == nil { order.append(key) }
                groups[key, default: []].append(unit)
            }
            return order.map { groups[$0] ?? [] }
        }
        var generator = SeededGenerator(seed: seed)
        var means = [Double](repeating: 0, count: resamples)
        for r in 0..<resamples {
            var total = 0.0
            for (suite, groups) in zip(present, grouped) {
                var drawn: [BootstrapUnit] = []
                drawn.reserveCapacity(suite.units.count)
                for group in groups {
                    for _ in 0..<group.count { drawn.append(group[generator.nextIndex(below: group.count)]) }
                }
                total += headline(drawn, statistic: suite.statistic)
            }
            means[r] = total / Double(present.count)
        }
        means.sort()
        let alpha = (1 - confidence) / 2
        return Interval(percentile(means, alpha), percentile(means, 1 - alpha))
    }

    /// Linear-interpolated percentile of sorted values (numpy's default method), `q` in 0…1.
    public static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let position = q * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down))
        let upper = min(lower + 1, sorted.count - 1)
        let fraction = position - Double(lower)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
    }

    /// McNemar's exact (binomial) two-sided p-value from the discordant counts: `b` pairs where
    /// only the base is right, `c` where only the candidate is right. 1 when there are none.
    public static func mcnemarExact(b: Int, c: Int) -> Double {
        let n = b + c
        guard n > 0 else { return 1 }
        let k = min(b, c)
        // A tail that reaches the middle is at least 1/2: the two-sided p is 1.
        if 2 * k + 1 >= n { return 1 }
        if n <= 1000 {
            // P(X <= k) for X ~ Binomial(n, 1/2), term by term: C(n, i+1) = C(n, i)(n-i)/(i+1).
            var term = pow(0.5, Double(n))
            var tail = term
            for i in 0..<k {
                term *= Double(n - i) / Double(i + 1)
                tail += term
            }
            return min(1, 2 * tail)
        }
        // Large n: sum in log space so 0.5^n does not underflow.
        var logTerms: [Double] = []
        logTerms.reserveCapacity(k + 1)
        let logHalfN = Double(n) * log(0.5)
        for i in 0...k {
            logTerms.append(logChoose(n, i) + logHalfN)
        }
        let maxLog = logTerms.max() ?? 0
        let tail = exp(maxLog) * logTerms.reduce(0) { $0 + exp($1 - maxLog) }
        return min(1, 2 * tail)
    }

    /// The Wilson score interval for `successes` out of `n`, as fractions.
    public static func wilson(successes: Double, n: Int, z: Double = 1.959963984540054) -> Interval {
        guard n > 0 else { return Interval(0, 0) }
        let nn = Double(n)
        let p = successes / nn
        let denominator = 1 + z * z / nn
        let center = (p + z * z / (2 * nn)) / denominator
        let half = z * ((p * (1 - p) / nn + z * z / (4 * nn * nn)).squareRoot()) / denominator
        return Interval(max(0, center - half), min(1, center + half))
    }

    static func logChoose(_ n: Int, _ k: Int) -> Double {
        lgamma(Double(n) + 1) - lgamma(Double(k) + 1) - lgamma(Double(n - k) + 1)
    }
}
