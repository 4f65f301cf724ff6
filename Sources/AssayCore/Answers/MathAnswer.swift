import Foundation

/// Normalisation and equivalence of free-form math answers, ported from MATH-Vision's
/// `evaluation/utils.py` (`find_math_answer`, `_strip_string`, `eval_tuple`, `is_equal`), which
/// in turn follows the MATH dataset's string normaliser.
///
/// The official `is_equal` ends with `round(eval(str(latex2sympy(x))), 2)` on both answers. Here
/// `LatexArithmetic` computes that value with a fixed grammar instead, so model text is never
/// evaluated as code; where the grammar stops (symbols, huge powers) the answers compare unequal,
/// which is also what the official code does when sympy returns a symbol.
public enum MathAnswer {
    // MARK: - find_math_answer

    /// `find_math_answer`: lower-cases, takes the (greedy) `\boxed{…}` content, keeps what follows
    /// the last `=` or `\approx`, drops spaces, `\text`, `\left`/`\right`, degree marks and a few
    /// units, then applies `_strip_string`.
    public static func normalize(_ input: String) -> String {
        var s = input.lowercased()
        if s.contains("{}") { s = s.replacingOccurrences(of: "{}", with: "") }
        var answer = greedyBoxedContent(s) ?? s
        // A closing brace with no opening one before it ends the answer.
        if let close = answer.firstIndex(of: "}") {
            if let open = answer.firstIndex(of: "{") {
                if close < open { answer = String(answer[..<close]) }
            } else {
                answer = String(answer[..<close])
            }
        }
        answer = lastComponent(answer, "=")
        answer = lastComponent(answer, "\\approx")
        let replacements: [(String, String)] = [
            (" ", ""), ("\\,", ""), ("∞", "\\infty"),
            ("+\\infty", "\\infty"), ("\\\\", "\\"), ("\n", ""),
            ("\\text", ""), ("\\mbox", ""), ("bmatrix", "pmatrix"),
            ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""),
            ("^\\circ", ""), ("{m}^3", ""), ("m^3", ""),
            ("{units}", ""), ("units", ""), ("{km}", ""), ("km", ""),
        ]
        for (target, replacement) in replacements {
            answer = answer.replacingOccurrences(of: target, with: replacement)
        }
        return stripString(answer)
    }

    /// Python's `re.findall('oxed{(.*)}', s, re.S)[-1]`: from the first `oxed{` to the last `}`
    /// after it (the pattern is greedy, so there is at most one match).
    static func greedyBoxedContent(_ s: String) -> String? {
        guard let open = s.range(of: "oxed{") else { return nil }
        guard let close = s[open.upperBound...].lastIndex(of: "}") else { return nil }
        return String(s[open.upperBound..<close])
    }

    /// Python's `s.split(separator)[-1]`: the text after the last separator (all of it when absent).
    public static func lastComponent(_ s: String, _ separator: String) -> String {
        s.components(separatedBy: separator).last ?? s
    }

    /// `_strip_string` of MATH-V (the MATH normaliser with MATH-V's changes: units only after
    /// `\text{ `, `\frac` repaired only when the answer has a square root).
    static func stripString(_ input: String) -> String {
        var string = input.replacingOccurrences(of: "\n", with: "")
        for (target, replacement) in [
            ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"),
            ("\\left", ""), ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""),
            ("\\$", ""), ("$", ""),
        ] {
            string = string.replacingOccurrences(of: target, with: replacement)
        }
        string = string.components(separatedBy: "\\text{ ").first ?? string
        string = string.replacingOccurrences(of: "\\%", with: "")
        string = string.replacingOccurrences(of: " .", with: " 0.")
        string = string.replacingOccurrences(of: "{.", with: "{0.")
        if string.isEmpty { return string }
        if string.hasPrefix(".") { string = "0" + string }
        let byEquals = string.components(separatedBy: "=")
        if byEquals.count == 2 { string = byEquals[1] }
        let byApprox = string.components(separatedBy: "\\approx")
        if byApprox.count == 2 { string = byApprox[1] }
        if string.contains("sqrt") { string = fixSqrt(string) }
        string = string.replacingOccurrences(of: " ", with: "")
        if string.contains("sqrt") { string = fixFracs(string) }
        if string == "0.5" { string = "\\frac{1}{2}" }
        return fixSlash(string)
    }

    /// `_fix_sqrt`: `\sqrt3` → `\sqrt{3}`.
    static func fixSqrt(_ string: String) -> String {
        let splits = string.components(separatedBy: "\\sqrt")
        var result = splits[0]
        for split in splits.dropFirst() {
            if let first = split.first, first != "{" {
                result += "\\sqrt{" + String(first) + "}" + split.dropFirst()
            } else {
                result += "\\sqrt" + split
            }
        }
        return result
    }

    /// `_fix_fracs`: `\frac12` → `\frac{1}{2}`, `\frac1{2}` → `\frac{1}{2}`.
    static func fixFracs(_ string: String) -> String {
        let pieces = string.components(separatedBy: "\\frac")
        var result = pieces[0]
        for piece in pieces.dropFirst() {
            result += "\\frac"
            let chars = Array(piece)
            if let first = chars.first, first == "{" {
                result += piece
                continue
            }
            guard chars.count >= 2 else { return string }
            let a = String(chars[0]), b = String(chars[1])
            let rest = String(chars.dropFirst(2))
            if b != "{" {
                result += "{" + a + "}{" + b + "}" + rest
            } else {
                result += "{" + a + "}" + b + rest
            }
        }
        return result
    }

    /// `_fix_a_slash_b`: `3/4` → `\frac{3}{4}` when both sides are integers written canonically
    /// (Python's `int()` accepts more, but the official code then requires `"{a}/{b}" == string`).
    static func fixSlash(_ string: String) -> String {
        let parts = string.components(separatedBy: "/")
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), string == "\(a)/\(b)" else { return string }
        return "\\frac{\(a)}{\(b)}"
    }

    // MARK: - is_equal

    /// MATH-V's `is_equal(a, b)`: equal ignoring case and surrounding spaces; or equal once
    /// tuples/lists have their elements evaluated and rounded to two places; or both evaluate to
    /// the same number rounded to two places. Empty answers are never equal.
    public static func isEquivalent(_ first: String, _ second: String) -> Bool {
        let a = first.lowercased(), b = second.lowercased()
        if a.replacingOccurrences(of: " ", with: "").isEmpty || b.replacingOccurrences(of: " ", with: "").isEmpty {
            return false
        }
        if a.trimmingCharacters(in: .whitespacesAndNewlines) == b.trimmingCharacters(in: .whitespacesAndNewlines) {
            return true
        }
        let ta = evaluateTuple(a), tb = evaluateTuple(b)
        if ta == tb { return true }
        guard let x = LatexArithmetic.evaluate(ta), let y = LatexArithmetic.evaluate(tb) else { return false }
        return x.roundedTwoPlaces == y.roundedTwoPlaces
    }

    /// `eval_tuple`: `(2*3, 5+2)` → `(6,7)`; elements that are `a`, `-a` or contain `infty` stay
    /// as written; when any other element is not arithmetic, the text is returned unchanged.
    public static func evaluateTuple(_ s: String) -> String {
        let chars = Array(s)
        guard chars.count >= 2 else { return s }
        let open = chars[0], close = chars[chars.count - 1]
        guard (open == "(" && close == ")") || (open == "[" && close == "]") else { return s }
        let elements = String(chars[1..<(chars.count - 1)]).components(separatedBy: ",")
        guard elements.count > 1 else { return s }
        var rendered: [String] = []
        for element in elements {
            if element.contains("infty") || element == "a" || element == "-a" {
                rendered.append(element)
                continue
            }
            guard let value = LatexArithmetic.evaluate(element) else { return s }
            rendered.append(value.roundedTwoPlacesText)
        }
        return String(open) + rendered.joined(separator: ",") + String(close)
    }
}
