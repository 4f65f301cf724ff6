import Foundation

/// A horizontal bar chart (one bar per run and suite: deltas, or scores), as standalone SVG.
public enum BarChart {
    public struct Series: Sendable {
        public var run: String
        /// Value in points by suite id.
        public var values: [String: Double]
        /// Optional 95% interval by suite id, drawn as a whisker.
        public var intervals: [String: (Double, Double)]

        public init(run: String, values: [String: Double], intervals: [String: (Double, Double)] = [:]) {
            self.run = run
            self.values = values
            self.intervals = intervals
        }
    }

    static let palette = ["#2f6db5", "#d9822b", "#3a9c5b", "#b53f3f", "#7a52a8", "#5f6b73"]

    /// - Parameter signedValues: label bars `+5.20` (deltas) or `5.20` (plain scores).
    public static func svg(suites: [String], series: [Series], title: String = "Per-suite delta vs base (points)",
                           signedValues: Bool = true) -> String {
        // Wide enough for the longest row name (category rows such as `blink › Functional_Correspondence`).
        let labelWidth = max(150, Double(suites.map(\.count).max() ?? 0) * charWidth + 16), plotWidth = 460.0, rightPad = 60.0
        let barHeight = 14.0, barGap = 3.0, suiteGap = 10.0, top = 48.0
        let rowHeight = Double(max(series.count, 1)) * (barHeight + barGap) + suiteGap
        let height = top + Double(suites.count) * rowHeight + 40
        var values: [Double] = [0]
        for s in series {
            values += s.values.values
            values += s.intervals.values.flatMap { [$0.0, $0.1] }
        }
        let finite = values.filter(\.isFinite)
        var low = min(finite.min() ?? 0, 0), high = max(finite.max() ?? 0, 0)
        if high - low < 1 { low -= 0.5; high += 0.5 }
        let pad = (high - low) * 0.05
        low -= pad; high += pad
        func label(_ v: Double) -> String { signedValues ? signed(v) : String(format: "%.2f", v) }
        // Negative bars carry their value label to their left: the plot starts after a gutter
        // as wide as the longest such label, so labels end before the suite names do.
        let negativeLabels = series.flatMap { s in s.values.values.filter { $0.isFinite && $0 < 0 }.map(label) }
        let gutter = negativeLabels.isEmpty ? 0 : Double(negativeLabels.map(\.count).max() ?? 0) * charWidth + 12
        let plotLeft = labelWidth + gutter
        let width = plotLeft + plotWidth + rightPad
        func x(_ v: Double) -> Double { plotLeft + (v - low) / (high - low) * plotWidth }

        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="11">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Int(width / 2))" y="18" text-anchor="middle" font-size="13" font-weight="bold">\(escape(title))</text>

            """
        // Legend.
        for (index, s) in series.enumerated() {
            let lx = labelWidth + Double(index) * 140
            out += "<rect x=\"\(f(lx))\" y=\"27\" width=\"10\" height=\"10\" fill=\"\(palette[index % palette.count])\"/>"
            out += "<text x=\"\(f(lx + 14))\" y=\"36\">\(escape(s.run))</text>\n"
        }
        // Grid lines at round numbers.
        let step = niceStep((high - low) / 6)
        var tick = (low / step).rounded(.up) * step
        while tick <= high {
            let tx = x(tick)
            out += "<line x1=\"\(f(tx))\" y1=\"\(f(top - 4))\" x2=\"\(f(tx))\" y2=\"\(f(height - 32))\" stroke=\"#e3e3e3\"/>"
            out += "<text x=\"\(f(tx))\" y=\"\(f(height - 18))\" text-anchor=\"middle\" fill=\"#555\">\(format(tick, step: step))</text>\n"
            tick += step
        }
        out += "<line x1=\"\(f(x(0)))\" y1=\"\(f(top - 4))\" x2=\"\(f(x(0)))\" y2=\"\(f(height - 32))\" stroke=\"#333\"/>\n"
        for (row, suite) in suites.enumerated() {
            let y0 = top + Double(row) * rowHeight
            let mid = y0 + Double(series.count) * (barHeight + barGap) / 2
            out += "<text x=\"\(f(labelWidth - 8))\" y=\"\(f(mid + 4))\" text-anchor=\"end\">\(escape(suite))</text>\n"
            for (index, s) in series.enumerated() {
                guard let delta = s.values[suite], delta.isFinite else { continue }
                let y = y0 + Double(index) * (barHeight + barGap)
                let x0 = min(x(0), x(delta)), w = abs(x(delta) - x(0))
                out += "<rect x=\"\(f(x0))\" y=\"\(f(y))\" width=\"\(f(max(w, 0.5)))\" height=\"\(f(barHeight))\" fill=\"\(palette[index % palette.count])\"><title>\(escape(s.run)) \(escape(suite)): \(label(delta))</title></rect>"
                if let (lo, hi) = s.intervals[suite], lo.isFinite, hi.isFinite {
                    let cy = y + barHeight / 2
                    out += "<line x1=\"\(f(x(lo)))\" y1=\"\(f(cy))\" x2=\"\(f(x(hi)))\" y2=\"\(f(cy))\" stroke=\"#222\"/>"
                    out += "<line x1=\"\(f(x(lo)))\" y1=\"\(f(cy - 3))\" x2=\"\(f(x(lo)))\" y2=\"\(f(cy + 3))\" stroke=\"#222\"/>"
                    out += "<line x1=\"\(f(x(hi)))\" y1=\"\(f(cy - 3))\" x2=\"\(f(x(hi)))\" y2=\"\(f(cy + 3))\" stroke=\"#222\"/>"
                }
                let labelX = delta >= 0 ? max(x(delta), s.intervals[suite].map { x($0.1) } ?? 0) + 4 : min(x(delta), s.intervals[suite].map { x($0.0) } ?? .infinity) - 4
                out += "<text x=\"\(f(labelX))\" y=\"\(f(y + barHeight - 3))\" text-anchor=\"\(delta >= 0 ? "start" : "end")\" fill=\"#333\">\(label(delta))</text>\n"
            }
        }
        out += "</svg>\n"
        return out
    }

    /// Width of one label character at font-size 11 (digits, signs and the point are narrower;
    /// an upper bound keeps the gutter wide enough).
    static let charWidth = 6.5

    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0 else { return 1 }
        let magnitude = pow(10, floor(log10(raw)))
        for m in [1.0, 2.0, 2.5, 5.0, 10.0] where raw <= m * magnitude { return m * magnitude }
        return 10 * magnitude
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }
    /// Tick labels with as many decimals as the step needs.
    static func format(_ v: Double, step: Double) -> String {
        if abs(v) < step * 1e-6 { return "0" }
        return String(format: step >= 1 ? "%.0f" : (step >= 0.1 ? "%.1f" : "%.2f"), v)
    }
    static func signed(_ v: Double) -> String { (v >= 0 ? "+" : "") + String(format: "%.2f", v) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
