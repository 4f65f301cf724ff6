import AssayCore
import Foundation

/// Lines of values against a numeric x axis (linear, or log₂ for sample counts), in panels under
/// one legend, as standalone SVG: the scaling report's score-against-n curves and the training
/// report's metrics and checkpoint scores against step.
public enum LineChart {
    /// How x values are placed.
    public enum XAxis: Sendable {
        case linear
        /// Log₂ spacing (x must be positive), as sample counts n = 1, 2, 4, … are drawn.
        case log2
    }

    /// The y range of a panel.
    public enum YRange: Sendable {
        /// Scores in percent: 5 points around the values (and intervals), kept within 0–100 and at
        /// least 10 points tall.
        case percent
        /// Any scale: the values' range with 5% of it as margin (a flat line gets a margin of a
        /// tenth of its value, or 1 around zero).
        case fitted
    }

    /// How a series draws the intervals of its points.
    public enum IntervalStyle: Sendable {
        /// A vertical line at each point (confidence intervals of a few points).
        case whiskers
        /// A shaded area between the lower and upper ends (a spread along many steps).
        case band
    }

    public struct Point: Sendable {
        public var x: Double
        public var y: Double
        public var interval: Interval?
        /// Hover text of the point's marker.
        public var label: String?

        public init(x: Double, y: Double, interval: Interval? = nil, label: String? = nil) {
            self.x = x
            self.y = y
            self.interval = interval
            self.label = label
        }
    }

    public struct Series: Sendable {
        public var name: String
        public var color: String
        public var points: [Point]
        public var intervalStyle: IntervalStyle
        /// A dot at each point (with its label as hover text); without, a bare line.
        public var markers: Bool
        public var dashed: Bool
        /// Shift in pixels along x, so the whiskers of series that share x values do not hide each other.
        public var offset: Double

        public init(name: String, color: String, points: [Point], intervalStyle: IntervalStyle = .whiskers, markers: Bool = true,
                    dashed: Bool = false, offset: Double = 0) {
            self.name = name
            self.color = color
            self.points = points
            self.intervalStyle = intervalStyle
            self.markers = markers
            self.dashed = dashed
            self.offset = offset
        }
    }

    public struct Panel: Sendable {
        public var title: String
        public var series: [Series]

        public init(title: String, series: [Series]) {
            self.title = title
            self.series = series
        }
    }

    /// One legend entry.
    public struct LegendEntry: Sendable {
        public var name: String
        public var color: String
        /// A shaded square (a band) rather than a line.
        public var band: Bool
        public var dashed: Bool

        public init(name: String, color: String, band: Bool = false, dashed: Bool = false) {
            self.name = name
            self.color = color
            self.band = band
            self.dashed = dashed
        }
    }

    public struct Layout: Sendable {
        public var panelWidth: Double
        public var panelHeight: Double
        public var columns: Int
        public var xAxis: XAxis
        /// Caption under the x axis.
        public var xTitle: String
        /// Label every x value that has a point (few points: sample counts, checkpoint steps), or
        /// round numbers (many points).
        public var xTicksAtPoints: Bool
        /// Smallest spacing of round-number x ticks (1 for steps).
        public var minimumXTickStep: Double
        public var yRange: YRange

        public init(panelWidth: Double = 360, panelHeight: Double = 240, columns: Int = 2, xAxis: XAxis = .linear, xTitle: String,
                    xTicksAtPoints: Bool = false, minimumXTickStep: Double = 1, yRange: YRange = .fitted) {
            self.panelWidth = panelWidth
            self.panelHeight = panelHeight
            self.columns = columns
            self.xAxis = xAxis
            self.xTitle = xTitle
            self.xTicksAtPoints = xTicksAtPoints
            self.minimumXTickStep = minimumXTickStep
            self.yRange = yRange
        }
    }

    /// The chart: a title, the legend, then the panels in rows of `layout.columns`.
    public static func svg(panels: [Panel], legend: [LegendEntry], title: String, layout: Layout) -> String {
        let columns = min(max(layout.columns, 1), max(panels.count, 1))
        let rows = (panels.count + columns - 1) / columns
        let top = 56.0
        let width = Double(columns) * layout.panelWidth + 20, height = top + Double(rows) * layout.panelHeight + 10
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Int(width / 2))" y="18" text-anchor="middle" font-size="13" font-weight="bold">\(BarChart.escape(title))</text>

            """
        // The legend fits the canvas however many entries there are, and a long name pushes the
        // next entry along rather than running into it.
        let spacing = min(120, (width - 20) / Double(max(legend.count, 1)))
        var lx = 20.0
        for entry in legend {
            if entry.band {
                out += "<rect x=\"\(BarChart.f(lx))\" y=\"27\" width=\"14\" height=\"9\" fill=\"\(entry.color)\" fill-opacity=\"0.25\"/>"
            } else if entry.dashed {
                out += "<line x1=\"\(BarChart.f(lx))\" y1=\"31.5\" x2=\"\(BarChart.f(lx + 14))\" y2=\"31.5\" stroke=\"\(entry.color)\" stroke-width=\"2\" stroke-dasharray=\"4,2\"/>"
            } else {
                out += "<rect x=\"\(BarChart.f(lx))\" y=\"30\" width=\"14\" height=\"3\" fill=\"\(entry.color)\"/>"
            }
            out += "<text x=\"\(BarChart.f(lx + 18))\" y=\"35\">\(BarChart.escape(entry.name))</text>\n"
            lx += max(spacing, Double(entry.name.count) * BarChart.charWidth + 24)
        }
        for (index, panel) in panels.enumerated() {
            let ox = 10 + Double(index % columns) * layout.panelWidth, oy = top + Double(index / columns) * layout.panelHeight
            out += panelSVG(panel, layout: layout, x: ox, y: oy)
        }
        return out + "</svg>\n"
    }

    /// The y range of a panel's values and intervals.
    static func yBounds(_ values: [Double], _ range: YRange) -> (low: Double, high: Double) {
        switch range {
        case .percent:
            var low = max(0, (values.min() ?? 0) - 5), high = min(100, (values.max() ?? 100) + 5)
            if high - low < 10 { low = max(0, low - 5); high = min(100, high + 5) }
            return (low, high)
        case .fitted:
            guard var low = values.min(), var high = values.max() else { return (0, 1) }
            let pad = high > low ? (high - low) * 0.05 : (high == 0 ? 1 : abs(high) * 0.1)
            low -= pad
            high += pad
            return (low, high)
        }
    }

    /// Tick labels with as many decimals as the step needs (`0.25` two, `2.5` one, `20` none).
    static func tickLabel(_ v: Double, step: Double) -> String {
        if abs(v) < step * 1e-6 { return "0" }
        var decimals = 0
        while decimals < 8 {
            let scaled = step * pow(10, Double(decimals))
            if abs(scaled - scaled.rounded()) < 1e-6 * max(1, scaled) { break }
            decimals += 1
        }
        return String(format: "%.\(decimals)f", v)
    }

    /// An x value as its axis shows it: whole numbers without a point.
    static func xLabel(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(format: "%g", v)
    }

    static func panelSVG(_ panel: Panel, layout: Layout, x ox: Double, y oy: Double) -> String {
        let points = panel.series.flatMap(\.points).filter { $0.x.isFinite && (layout.xAxis == .linear || $0.x > 0) }
        let xs = Array(Set(points.map(\.x))).sorted()
        guard let minX = xs.first, let maxX = xs.last else { return "" }
        let values = points.flatMap { [$0.interval?.lower, $0.interval?.upper, $0.y].compactMap { $0 } }.filter(\.isFinite)
        let (low, high) = yBounds(values, layout.yRange)
        let step = BarChart.niceStep((high - low) / 5)
        var ticks: [Double] = []
        var tick = (low / step).rounded(.up) * step
        while tick <= high + 1e-9 * max(1, abs(high)) {
            ticks.append(tick)
            tick += step
        }
        // Room on the left for the longest y label.
        let labelWidth = Double(ticks.map { tickLabel($0, step: step).count }.max() ?? 0) * BarChart.charWidth + 8
        let left = ox + max(44, labelWidth), right = ox + layout.panelWidth - 16, plotTop = oy + 22, bottom = oy + layout.panelHeight - 36
        func position(_ v: Double) -> Double {
            switch layout.xAxis {
            case .linear: return v
            case .log2: return Foundation.log2(v)
            }
        }
        let span = max(position(maxX) - position(minX), 1)
        func x(_ v: Double) -> Double { left + (position(v) - position(minX)) / span * (right - left) }
        func y(_ v: Double) -> Double { bottom - (v - low) / max(high - low, 1e-12) * (bottom - plotTop) }
        let f = BarChart.f
        var out = "<text x=\"\(f((left + right) / 2))\" y=\"\(f(oy + 12))\" text-anchor=\"middle\" font-weight=\"bold\">\(BarChart.escape(panel.title))</text>\n"
        for tick in ticks {
            out += "<line x1=\"\(f(left))\" y1=\"\(f(y(tick)))\" x2=\"\(f(right))\" y2=\"\(f(y(tick)))\" stroke=\"#e3e3e3\"/>"
            out += "<text x=\"\(f(left - 4))\" y=\"\(f(y(tick) + 4))\" text-anchor=\"end\" fill=\"#555\">\(tickLabel(tick, step: step))</text>\n"
        }
        var xTicks = xs
        if !layout.xTicksAtPoints {
            let xStep = max(BarChart.niceStep((maxX - minX) / 6), layout.minimumXTickStep)
            xTicks = []
            var t = (minX / xStep).rounded(.up) * xStep
            while t <= maxX + 1e-9 * max(1, abs(maxX)) {
                xTicks.append(t)
                t += xStep
            }
        }
        for t in xTicks {
            out += "<text x=\"\(f(x(t)))\" y=\"\(f(bottom + 14))\" text-anchor=\"middle\" fill=\"#555\">\(xLabel(t))</text>\n"
        }
        out += "<text x=\"\(f((left + right) / 2))\" y=\"\(f(bottom + 28))\" text-anchor=\"middle\" fill=\"#555\">\(BarChart.escape(layout.xTitle))</text>\n"
        out += "<line x1=\"\(f(left))\" y1=\"\(f(bottom))\" x2=\"\(f(right))\" y2=\"\(f(bottom))\" stroke=\"#333\"/>\n"
        for series in panel.series {
            let drawn = series.points.filter { $0.x.isFinite && (layout.xAxis == .linear || $0.x > 0) }.sorted { $0.x < $1.x }
            guard !drawn.isEmpty else { continue }
            let c = series.color
            func px(_ p: Point) -> Double { x(p.x) + series.offset }
            if series.intervalStyle == .band {
                // One shaded polygon per run of points with finite intervals.
                for run in runs(drawn, where: { p in p.interval.map { $0.lower.isFinite && $0.upper.isFinite } ?? false }) {
                    let upper = run.map { "\(f(px($0))),\(f(y($0.interval?.upper ?? $0.y)))" }
                    let lower = run.reversed().map { "\(f(px($0))),\(f(y($0.interval?.lower ?? $0.y)))" }
                    out += "<polygon points=\"\((upper + lower).joined(separator: " "))\" fill=\"\(c)\" fill-opacity=\"0.2\" stroke=\"none\"/>\n"
                }
            }
            // A value that is not finite breaks the line rather than dropping out of it unseen.
            let dash = series.dashed ? " stroke-dasharray=\"5,3\"" : ""
            for run in runs(drawn, where: { $0.y.isFinite }) {
                let path = run.map { "\(f(px($0))),\(f(y($0.y)))" }.joined(separator: " ")
                out += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"\(dash)/>\n"
                if run.count == 1, !series.markers, let p = run.first {
                    out += "<circle cx=\"\(f(px(p)))\" cy=\"\(f(y(p.y)))\" r=\"2\" fill=\"\(c)\"/>\n"
                }
            }
            guard series.markers else { continue }
            for p in drawn where p.y.isFinite {
                if series.intervalStyle == .whiskers, let interval = p.interval, interval.lower.isFinite, interval.upper.isFinite {
                    out += "<line x1=\"\(f(px(p)))\" y1=\"\(f(y(interval.lower)))\" x2=\"\(f(px(p)))\" y2=\"\(f(y(interval.upper)))\" stroke=\"\(c)\" stroke-opacity=\"0.6\"/>"
                }
                let hover = p.label.map { "<title>\(BarChart.escape($0))</title>" } ?? ""
                out += "<circle cx=\"\(f(px(p)))\" cy=\"\(f(y(p.y)))\" r=\"3\" fill=\"\(c)\">\(hover)</circle>\n"
            }
        }
        return out
    }

    /// Maximal stretches of consecutive points that satisfy `keep`.
    static func runs(_ points: [Point], where keep: (Point) -> Bool) -> [[Point]] {
        var result: [[Point]] = [], current: [Point] = []
        for p in points {
            if keep(p) {
                current.append(p)
            } else if !current.isEmpty {
                result.append(current)
                current = []
            }
        }
        if !current.isEmpty { result.append(current) }
        return result
    }
}
