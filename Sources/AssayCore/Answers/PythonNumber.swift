import Foundation

/// Python's number conversions, reproduced exactly where official scorers depend on them
/// (`float(s)`, `int(float(s))`, `round(x, n)`, `str(x)`).
public enum PythonNumber {
    /// `float(s)`: surrounding whitespace, an optional sign, digits with single underscores
    /// between them, a fraction, an exponent, `inf`/`infinity`/`nan` in any case. `nil` where
    /// Python raises `ValueError`.
    public static func parseFloat(_ string: String) -> Double? {
        let trimmed = string.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return nil }
        var body = Substring(trimmed)
        var negative = false
        if let first = body.first, first == "+" || first == "-" {
            negative = first == "-"
            body = body.dropFirst()
        }
        switch body.lowercased() {
        case "inf", "infinity": return negative ? -.infinity : .infinity
        case "nan": return .nan
        default: break
        }
        guard let cleaned = removeDigitUnderscores(body), isDecimalLiteral(cleaned) else { return nil }
        guard let value = Double(cleaned) else { return nil }
        return negative ? -value : value
    }

    /// `str(int(float(s)))`, or `nil` where Python raises.
    public static func integerString(_ string: String) -> String? {
        guard let value = parseFloat(string), value.isFinite else { return nil }
        let truncated = value.rounded(.towardZero)
        if abs(truncated) < 9.0e18 { return String(Int64(truncated)) }
        return String(format: "%.0f", truncated)
    }

    /// `round(x, digits)` for a float: the value nearest to the exact decimal rounding of `x`
    /// (ties to even, as CPython rounds the exact binary value).
    public static func round(_ value: Double, digits: Int) -> Double {
        guard value.isFinite else { return value }
        if digits > 300 { return value }
        let formatted = String(format: "%.\(max(digits, 0))f", value)
        if digits >= 0 { return Double(formatted) ?? value }
        let scale = pow(10.0, Double(-digits))
        return (value / scale).rounded(.toNearestOrEven) * scale
    }

    /// `str(x)` / `repr(x)` for a float: shortest round-trip digits, `.0` for integral values,
    /// exponent notation below 1e-4 and from 1e16, as CPython prints them.
    public static func repr(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        // Swift's description follows the same shortest-digits algorithm and the same switch
        // points to exponent notation; only the exponent spelling differs ("1e-05" in both).
        return value.description
    }

    private static func removeDigitUnderscores(_ text: Substring) -> String? {
        guard text.contains("_") else { return String(text) }
        let chars = Array(text)
        for (i, c) in chars.enumerated() where c == "_" {
            guard i > 0, i < chars.count - 1, chars[i - 1].isASCIIDigit, chars[i + 1].isASCIIDigit else { return nil }
        }
        return String(chars.filter { $0 != "_" })
    }

    private static func isDecimalLiteral(_ text: String) -> Bool {
        // digits [. digits] [e [+-] digits], with at least one digit in the mantissa.
        var sawDigit = false
        var index = text.startIndex
        while index < text.endIndex, text[index].isASCIIDigit { sawDigit = true; index = text.index(after: index) }
        if index < text.endIndex, text[index] == "." {
            index = text.index(after: index)
            while index < text.endIndex, text[index].isASCIIDigit { sawDigit = true; index = text.index(after: index) }
        }
        guard sawDigit else { return false }
        if index < text.endIndex, text[index] == "e" || text[index] == "E" {
            index = text.index(after: index)
            if index < text.endIndex, text[index] == "+" || text[index] == "-" { index = text.index(after: index) }
            var expDigit = false
            while index < text.endIndex, text[index].isASCIIDigit { expDigit = true; index = text.index(after: index) }
            guard expDigit else { return false }
        }
        return index == text.endIndex
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
