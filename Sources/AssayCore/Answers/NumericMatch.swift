import Foundation

/// Number reading and comparison with tolerance or precision.
public enum NumericMatch {
    /// Reads a number written the way answers write them: `1,234.5`, `-3`, `45%`, `$12`, `3.2e4`.
    /// Returns `nil` when the text is not a number (units beyond `%` and currency are not removed).
    public static func parse(_ text: String) -> Double? {
        var cleaned = text.trimmingCharacters(in: .whitespacesAndNewlines)
        for symbol in ["$", "€", "£", "%"] { cleaned = cleaned.replacingOccurrences(of: symbol, with: "") }
        if thousands.matchesEntirely(cleaned) { cleaned = cleaned.replacingOccurrences(of: ",", with: "") }
        if cleaned.hasSuffix(".") { cleaned.removeLast() }
        guard let value = PythonNumber.parseFloat(cleaned), value.isFinite else { return nil }
        return value
    }

    private static let thousands = Pattern(#"[-+]?\d{1,3}(,\d{3})+(\.\d+)?"#)

    /// True when both are numbers within `relativeTolerance` of the target (|p − t| ≤ tol·|t|;
    /// exact when the target is 0), or, when either is not a number, equal ignoring case.
    public static func relaxedEqual(_ prediction: String, _ target: String, relativeTolerance: Double = 0.05) -> Bool {
        if let p = parse(prediction), let t = parse(target) {
            if t == 0 { return p == 0 }
            return abs(p - t) / abs(t) <= relativeTolerance + 1e-12
        }
        return prediction.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            == target.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }

    /// True when the two numbers agree after rounding both to `digits` decimals (Python rounding).
    public static func equalAtPrecision(_ prediction: Double, _ target: Double, digits: Int) -> Bool {
        PythonNumber.round(prediction, digits: digits) == PythonNumber.round(target, digits: digits)
    }

    /// True when |p − t| ≤ absoluteTolerance.
    public static func within(_ prediction: Double, _ target: Double, absoluteTolerance: Double) -> Bool {
        abs(prediction - target) <= absoluteTolerance
    }
}
