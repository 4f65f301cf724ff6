import Foundation

/// How a suite's headline is computed from its bootstrap units.
public enum HeadlineStatistic: String, Codable, Sendable {
    /// The mean over all units (plain accuracy).
    case mean
    /// The unweighted mean over strata of each stratum's mean (BLINK's macro over subtasks).
    case macroMean = "macro_mean"
}

/// One resampling unit: an item, or a group of items scored together (an MMVP pair), with the
/// stratum it belongs to (the subtask for macro-averaged suites).
public struct BootstrapUnit: Sendable, Hashable {
    public var id: String
    public var stratum: String
    public var value: Double

    public init(id: String, stratum: String = "", value: Double) {
        self.id = id
        self.stratum = stratum
        self.value = value
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
            return units.reduce(0) { $0 + $1.value } / Double(units.count)
        case .macroMean:
            var sums: [String: (Double, Int)] = [:]
            for unit in units {
                let current = sums[unit.stratum] ?? (0, 0)
                sums[unit.stratum] = (current.0 + unit.value, current.1 + 1)
            }
            // Summed in a fixed order so equal inputs give bit-equal headlines.
            return sums.keys.sorted().reduce(0) { $0 + sums[$1]!.0 / Double(sums[$1]!.1) } / Double(sums.count)
        }
    }

    /// Percentile bootstrap interval of the headline. Macro means resample within each stratum so
    /// every stratum keeps its size; plain means resample all units.
    public static func bootstrap(
        _ units: [BootstrapUnit], statistic: HeadlineStatistic, resamples: Int = 10_000,
        confidence: Double = 0.95, seed: UInt64 = 0
    ) -> Interval {
        let pairs = units.map { (stratum: $0.stratum, base: 0.0, candidate: $0.value) }
        return resample(pairs, statistic: statistic, resamples: resamples, confidence: confidence, seed: seed)
    }

    /// Percentile interval of `headline(candidate) − headline(base)` over paired resamples: the
    /// same resampled units are used for both runs, so item difficulty cancels out.
    public static func pairedBootstrap(
        base: [BootstrapUnit], candidate: [BootstrapUnit], statistic: HeadlineStatistic,
        resamples: Int = 10_000, confidence: Double = 0.95, seed: UInt64 = 0
    ) -> Interval {
        let candidateByID = Dictionary(candidate.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let pairs = base.compactMap { unit -> (stratum: String, base: Double, candidate: Double)? in
            guard let other = candidateByID[unit.id] else { return nil }
            return (unit.stratum, unit.value, other.value)
        }
        return resample(pairs, statistic: statistic, resamples: resamples, confidence: confidence, seed: seed)
    }

    private static func resample(
        _ pairs: [(stratum: String, base: Double, candidate: Double)], statistic: HeadlineStatistic,
        resamples: Int, confidence: Double, seed: UInt64
    ) -> Interval {
        guard !pairs.isEmpty, resamples > 0 else { return Interval(0, 0) }
        // Strata in a fixed order so the same seed gives the same draws.
        var strataOrder: [String] = []
        var strata: [String: [(Double, Double)]] = [:]
        for pair in pairs {
            let key = statistic == .macroMean ? pair.stratum : ""
            if strata[key] == nil { strataOrder.append(key) }
            strata[key, default: []].append((pair.base, pair.candidate))
        }
        let groups = strataOrder.map { key in (strata[key]!.map(\.0), strata[key]!.map(\.1)) }
        var generator = SeededGenerator(seed: seed)
        var differences = [Double](repeating: 0, count: resamples)
        for r in 0..<resamples {
            var total = 0.0
            for (baseValues, candidateValues) in groups {
                let n = baseValues.count
                var sum = 0.0
                for _ in 0..<n {
                    let i = generator.nextIndex(below: n)
                    sum += candidateValues[i] - baseValues[i]
                }
                total += sum / Double(n)
            }
            differences[r] = total / Double(groups.count)
        }
        differences.sort()
        let alpha = (1 - confidence) / 2
        return Interval(percentile(differences, alpha), percentile(differences, 1 - alpha))
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
