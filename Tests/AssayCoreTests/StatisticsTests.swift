import AssayCore
import XCTest

final class StatisticsTests: XCTestCase {
    func testMcNemarExactMatchesBinomialTail() {
        // b = 10, c = 2: p = 2 * P(X <= 2 | n = 12, 1/2) = 2 * 79/4096 (scipy.stats.binomtest).
        XCTAssertEqual(Statistics.mcnemarExact(b: 10, c: 2), 2 * 79.0 / 4096, accuracy: 1e-12)
        XCTAssertEqual(Statistics.mcnemarExact(b: 0, c: 0), 1)
        XCTAssertEqual(Statistics.mcnemarExact(b: 5, c: 5), 1)
        XCTAssertEqual(Statistics.mcnemarExact(b: 3, c: 4), 1)
        // Large counts stay finite and tiny.
        let p = Statistics.mcnemarExact(b: 50, c: 500)
        XCTAssertGreaterThan(p, 0)
        XCTAssertLessThan(p, 1e-80)
    }

    func testWilsonInterval() {
        // statsmodels proportion_confint(8, 10, method="wilson") = (0.4901625, 0.9433178).
        let interval = Statistics.wilson(successes: 8, n: 10)
        XCTAssertEqual(interval.lower, 0.4901625, accuracy: 1e-6)
        XCTAssertEqual(interval.upper, 0.9433178, accuracy: 1e-6)
        XCTAssertEqual(Statistics.wilson(successes: 0, n: 0), Interval(0, 0))
    }

    func testHeadlineMeanAndMacroMean() {
        let units = [
            BootstrapUnit(id: "1", stratum: "a", value: 1), BootstrapUnit(id: "2", stratum: "a", value: 1),
            BootstrapUnit(id: "3", stratum: "a", value: 0), BootstrapUnit(id: "4", stratum: "b", value: 0),
        ]
        XCTAssertEqual(Statistics.headline(units, statistic: .mean), 0.5)
        XCTAssertEqual(Statistics.headline(units, statistic: .macroMean), (2.0 / 3 + 0) / 2, accuracy: 1e-12)
    }

    func testBootstrapIsSeededAndReproducible() {
        var generator = SeededGenerator(seed: 7)
        let units = (0..<300).map { BootstrapUnit(id: "\($0)", value: generator.nextUnit() < 0.6 ? 1 : 0) }
        let a = Statistics.bootstrap(units, statistic: .mean, resamples: 2000, seed: 42)
        let b = Statistics.bootstrap(units, statistic: .mean, resamples: 2000, seed: 42)
        XCTAssertEqual(a, b)
        // With continuous scores another seed draws other resamples, so other percentiles.
        let continuous = (0..<300).map { BootstrapUnit(id: "\($0)", value: generator.nextUnit()) }
        XCTAssertNotEqual(Statistics.bootstrap(continuous, statistic: .mean, resamples: 2000, seed: 42),
                          Statistics.bootstrap(continuous, statistic: .mean, resamples: 2000, seed: 43))
        let mean = Statistics.headline(units, statistic: .mean)
        XCTAssertTrue(a.contains(mean))
        // The percentile interval of a proportion near 0.6 with n = 300 is about ±0.055.
        XCTAssertEqual(a.upper - a.lower, 2 * 1.96 * (mean * (1 - mean) / 300).squareRoot(), accuracy: 0.02)
    }

    func testPairedBootstrapOfARunWithItselfIsZero() {
        let units = (0..<50).map { BootstrapUnit(id: "\($0)", stratum: "\($0 % 3)", value: Double($0 % 2)) }
        let interval = Statistics.pairedBootstrap(base: units, candidate: units, statistic: .macroMean, resamples: 500)
        XCTAssertEqual(interval, Interval(0, 0))
    }

    func testPairedBootstrapCentersOnTheDelta() {
        var generator = SeededGenerator(seed: 1)
        var base: [BootstrapUnit] = [], candidate: [BootstrapUnit] = []
        for i in 0..<400 {
            let b = generator.nextUnit() < 0.5 ? 1.0 : 0.0
            let c = b == 1 ? 1.0 : (generator.nextUnit() < 0.3 ? 1.0 : 0.0)
            base.append(BootstrapUnit(id: "\(i)", value: b))
            candidate.append(BootstrapUnit(id: "\(i)", value: c))
        }
        let delta = Statistics.headline(candidate, statistic: .mean) - Statistics.headline(base, statistic: .mean)
        let interval = Statistics.pairedBootstrap(base: base, candidate: candidate, statistic: .mean, resamples: 4000, seed: 3)
        XCTAssertTrue(interval.contains(delta))
        XCTAssertGreaterThan(interval.lower, 0)
    }

    func testSeededGeneratorIndexIsUniform() {
        var generator = SeededGenerator(seed: 99)
        var counts = [Int](repeating: 0, count: 7)
        for _ in 0..<70_000 { counts[generator.nextIndex(below: 7)] += 1 }
        for count in counts { XCTAssertEqual(Double(count), 10_000, accuracy: 400) }
    }
}
