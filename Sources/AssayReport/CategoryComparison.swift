import AssayCore
import AssaySuites
import Foundation

/// A candidate run against a base run on one category (BLINK's subtask, MMStar's category) of a
/// suite, over the items of that category both runs answered.
///
/// The category's value is the suite's own headline statistic over the suite's own resampling
/// units restricted to the category (an MMVP pair, POPE's F1 weights, a CircularEval group), so a
/// category's delta and interval are computed exactly as the suite's headline is, only on fewer
/// units. For an accuracy suite that is the category's accuracy, which is what the per-run
/// `category/<name>` metric holds.
public struct CategoryComparison: Sendable, Codable, Hashable {
    public var category: String
    /// In percent on the paired items.
    public var base: Double
    public var candidate: Double
    public var delta: Double
    /// Paired-bootstrap 95% interval of the delta, in points.
    public var ci95: Interval
    /// McNemar's exact p for binary scores; `nil` when scores are not binary.
    public var pValue: Double?
    public var nPaired: Int
}

extension Comparator {
    /// Per-category comparisons of one suite, sorted by category name; empty when the suite's
    /// items carry no category. Each category gets its own seeded bootstrap (the same seed), so
    /// adding a category to a suite does not move the others' intervals.
    public static func compareCategories(
        _ suite: Suite, base: [ScoredItem], candidate: [ScoredItem], resamples: Int = 10_000, seed: UInt64 = 0
    ) -> [CategoryComparison] {
        func byCategory(_ scores: [ScoredItem]) -> [String: [ScoredItem]] {
            var groups: [String: [ScoredItem]] = [:]
            for score in scores {
                guard let category = score.item.category, !category.isEmpty else { continue }
                groups[category, default: []].append(score)
            }
            return groups
        }
        let baseGroups = byCategory(base)
        let candidateGroups = byCategory(candidate)
        var result: [CategoryComparison] = []
        for category in Set(baseGroups.keys).intersection(candidateGroups.keys).sorted() {
            let paired = compareSuite(
                suite, base: baseGroups[category] ?? [], candidate: candidateGroups[category] ?? [], resamples: resamples, seed: seed)
            guard paired.nPaired > 0 else { continue }
            result.append(CategoryComparison(
                category: category, base: paired.base, candidate: paired.candidate, delta: paired.delta,
                ci95: paired.ci95, pValue: paired.pValue, nPaired: paired.nPaired))
        }
        return result
    }
}

extension MarkdownReport {
    /// The per-category delta table of one suite against the base, one column block per
    /// candidate; empty when no comparison has categories for the suite. Suites with more than
    /// 40 categories are left to `assay compare --json` (a table that long hides the headline).
    static func categoryDeltaTable(suite: String, base: String, comparisons: [RunComparison]) -> String {
        let rows = comparisons.map { comparison in comparison.suites.first { $0.suite == suite }?.categories ?? [] }
        let names = Set(rows.flatMap { $0.map(\.category) }).sorted()
        guard !names.isEmpty, names.count <= 40 else { return "" }
        var md = "\n#### \(suite) by category (Δ vs \(cell(base)))\n\n"
        md += "| category | base (\(cell(base))) |" + comparisons.map { " \(cell($0.candidate.name)) | Δ | 95% CI | p | n |" }.joined() + "\n"
        md += "|---|---:|" + String(repeating: "---:|---:|---|---:|---:|", count: comparisons.count) + "\n"
        for name in names {
            let entries = rows.map { $0.first { $0.category == name } }
            var line = "| \(cell(name)) | \(entries.compactMap { $0 }.first.map { fixed($0.base) } ?? "—") |"
            for entry in entries {
                if let c = entry {
                    line += " \(fixed(c.candidate)) | \(signed(c.delta)) | [\(signed(c.ci95.lower)), \(signed(c.ci95.upper))] | \(c.pValue.map(pFormat) ?? "—") | \(c.nPaired) |"
                } else {
                    line += " — | — | — | — | — |"
                }
            }
            md += line + "\n"
        }
        return md
    }
}

extension MarkdownReport {
    /// The comparison chart's rows: each suite, followed by its categories (`blink › Counting`)
    /// when the whole chart stays readable (at most `maxCategoryRows` category rows in all, as
    /// for a report on BLINK or MMStar); a sweep over many suites keeps one row per suite.
    struct ComparisonChart {
        var rows: [String]
        var series: [BarChart.Series]
        var withCategories: Bool

        func title(base: String) -> String {
            withCategories ? "Delta vs \(base) per suite and category (points, 95% CI)" : "Per-suite delta vs \(base) (points, 95% CI)"
        }
    }

    static let maxCategoryRows = 40

    static func categoryChartRows(suites: [String], comparisons: [RunComparison]) -> ComparisonChart {
        var categories: [String: [String]] = [:]
        for suite in suites {
            let names = Set(comparisons.flatMap { $0.suites.first { $0.suite == suite }?.categories.map(\.category) ?? [] })
            if !names.isEmpty { categories[suite] = names.sorted() }
        }
        let total = categories.values.reduce(0) { $0 + $1.count }
        let withCategories = total > 0 && total <= maxCategoryRows
        var rows: [String] = []
        for suite in suites {
            rows.append(suite)
            if withCategories { rows += (categories[suite] ?? []).map { "\(suite) › \($0)" } }
        }
        let series = comparisons.map { comparison in
            var values: [String: Double] = [:]
            var intervals: [String: (Double, Double)] = [:]
            for suite in comparison.suites {
                values[suite.suite] = suite.delta
                intervals[suite.suite] = (suite.ci95.lower, suite.ci95.upper)
                guard withCategories else { continue }
                for category in suite.categories {
                    let row = "\(suite.suite) › \(category.category)"
                    values[row] = category.delta
                    intervals[row] = (category.ci95.lower, category.ci95.upper)
                }
            }
            return BarChart.Series(run: comparison.candidate.name, values: values, intervals: intervals)
        }
        return ComparisonChart(rows: rows, series: series, withCategories: withCategories)
    }
}
