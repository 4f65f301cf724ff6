import Foundation

/// A number computed by `LatexArithmetic`: exact while the arithmetic stays exact (integers and
/// fractions, as sympy keeps them), a binary floating-point number otherwise (decimals, `\pi`,
/// irrational roots).
///
/// The distinction matters because official scorers print values after `eval(str(sympy_expr))`:
/// an exact integer prints as `2`, a float as `2.0`, and tuple answers are compared as text.
public enum MathValue: Sendable, Hashable {
    /// `numerator / denominator`, reduced, with a positive denominator.
    case rational(Int, Int)
    case real(Double)

    /// The value as a `Double` (a fraction divided out, as Python's `/` does).
    public var double: Double {
        switch self {
        case .rational(let p, let q): return Double(p) / Double(q)
        case .real(let value): return value
        }
    }

    /// True for an exact integer (Python would hold it as an `int`).
    public var isInteger: Bool {
        if case .rational(_, let q) = self { return q == 1 }
        return false
    }

    /// `round(eval(str(value)), 2)` printed by Python's `str`: an exact integer stays an integer
    /// (`2`), everything else becomes a float rounded to two places (`0.33`, `2.0`).
    public var roundedTwoPlacesText: String {
        if case .rational(let p, 1) = self { return String(p) }
        return PythonNumber.repr(PythonNumber.round(double, digits: 2))
    }

    /// `round(x, 2)` as Python compares it (an integer and an equal float are equal).
    public var roundedTwoPlaces: Double {
        if case .rational(let p, 1) = self { return Double(p) }
        return PythonNumber.round(double, digits: 2)
    }

    static func make(_ p: Int, _ q: Int) -> MathValue? {
        guard q != 0 else { return nil }
        // abs(Int.min) does not exist: such a fraction continues as a float.
        if p == Int.min || q == Int.min { return .real(Double(p) / Double(q)) }
        var p = p, q = q
        if q < 0 {
            let (np, o1) = (0).subtractingReportingOverflow(p)
            let (nq, o2) = (0).subtractingReportingOverflow(q)
            if o1 || o2 { return .real(Double(p) / Double(q)) }
            p = np
            q = nq
        }
        let divisor = gcd(abs(p), q)
        return .rational(p / divisor, q / divisor)
    }

    static func gcd(_ a: Int, _ b: Int) -> Int {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a == 0 ? 1 : a
    }
}

/// Evaluates the arithmetic in a short LaTeX answer: numbers, `+ - * /`, `\times`, `\cdot`,
/// `\div`, `:` (a ratio, read as a division), `^`, `\frac`, `\dfrac`, `\sqrt` (with an optional
/// index), `\pi`, parentheses and braces, and implicit multiplication (`2\sqrt{3}`, `9(\pi-2)`).
///
/// It stands in for the `latex2sympy` + `eval` step of official math scorers (MATH-Vision, EMMA)
/// without evaluating anything as code: it is a small parser over a fixed grammar, and anything
/// outside that grammar (letters, `\infty`, `^\circ`, units, commas) makes it return `nil`, just
/// as sympy's symbolic result makes the official `eval` raise and the comparison fail.
public enum LatexArithmetic {
    /// The value of `text`, or `nil` when it is not closed arithmetic the grammar covers, divides
    /// by zero, or leaves the range of `Double`.
    public static func evaluate(_ text: String) -> MathValue? {
        var parser = Parser(text)
        guard let value = parser.parseExpression(), parser.atEnd else { return nil }
        if case .real(let d) = value, !d.isFinite { return nil }
        return value
    }

    // MARK: - Arithmetic

    static func add(_ a: MathValue, _ b: MathValue) -> MathValue? {
        if case .rational(let p1, let q1) = a, case .rational(let p2, let q2) = b {
            let (x, o1) = p1.multipliedReportingOverflow(by: q2)
            let (y, o2) = p2.multipliedReportingOverflow(by: q1)
            let (q, o3) = q1.multipliedReportingOverflow(by: q2)
            let (p, o4) = x.addingReportingOverflow(y)
            if !(o1 || o2 || o3 || o4) { return MathValue.make(p, q) }
        }
        return finite(a.double + b.double)
    }

    static func negate(_ a: MathValue) -> MathValue? {
        if case .rational(let p, let q) = a, p != Int.min { return .rational(-p, q) }
        return finite(-a.double)
    }

    static func multiply(_ a: MathValue, _ b: MathValue) -> MathValue? {
        if case .rational(let p1, let q1) = a, case .rational(let p2, let q2) = b {
            let (p, o1) = p1.multipliedReportingOverflow(by: p2)
            let (q, o2) = q1.multipliedReportingOverflow(by: q2)
            if !(o1 || o2) { return MathValue.make(p, q) }
        }
        return finite(a.double * b.double)
    }

    static func divide(_ a: MathValue, _ b: MathValue) -> MathValue? {
        if b.double == 0 { return nil }  // sympy's zoo: the official eval fails
        if case .rational(let p2, let q2) = b {
            return multiply(a, MathValue.make(q2, p2) ?? .real(1 / b.double))
        }
        return finite(a.double / b.double)
    }

    static func power(_ base: MathValue, _ exponent: MathValue) -> MathValue? {
        if case .rational(let e, 1) = exponent, case .rational = base, abs(e) <= 4096 {
            var result: MathValue = .rational(1, 1)
            var exact = true
            for _ in 0..<abs(e) {
                guard let next = multiply(result, base) else { return nil }
                result = next
                if case .real = next { exact = false; break }
            }
            if exact { return e >= 0 ? result : divide(.rational(1, 1), result) }
        }
        if case .rational(let p, let q) = exponent, q > 1, let root = exactRoot(base, degree: q) {
            return power(root, .rational(p, 1))
        }
        if base.double < 0, !exponent.isInteger { return nil }  // complex in sympy
        return finite(pow(base.double, exponent.double))
    }

    static func root(_ value: MathValue, degree: Int) -> MathValue? {
        guard degree >= 1 else { return nil }
        if let exact = exactRoot(value, degree: degree) { return exact }
        if value.double < 0 { return degree % 2 == 1 ? finite(-pow(-value.double, 1 / Double(degree))) : nil }
        return finite(pow(value.double, 1 / Double(degree)))
    }

    /// The exact root of a fraction whose numerator and denominator are perfect powers (sympy
    /// simplifies `\sqrt{4}` to the integer 2).
    private static func exactRoot(_ value: MathValue, degree: Int) -> MathValue? {
        guard case .rational(let p, let q) = value, p >= 0, degree >= 1 else { return nil }
        if degree == 1 { return value }
        func integerRoot(_ n: Int) -> Int? {
            let guess = Int(pow(Double(n), 1 / Double(degree)).rounded())
            for candidate in max(0, guess - 1)...(guess + 1) {
                var product = 1
                var overflow = false
                for _ in 0..<degree {
                    let (next, o) = product.multipliedReportingOverflow(by: candidate)
                    if o { overflow = true; break }
                    product = next
                }
                if !overflow, product == n { return candidate }
            }
            return nil
        }
        guard let a = integerRoot(p), let b = integerRoot(q) else { return nil }
        return MathValue.make(a, b)
    }

    private static func finite(_ value: Double) -> MathValue? {
        value.isFinite ? .real(value) : nil
    }

    // MARK: - Parser

    /// Recursive descent over Unicode scalars. Precedence, loosest first: `+ -`; `* / : \times
    /// \cdot \div` and implicit products; unary sign; `^` (right-associative).
    struct Parser {
        let s: [Unicode.Scalar]
        var i = 0

        init(_ text: String) { s = Array(text.unicodeScalars) }

        var atEnd: Bool {
            var copy = self
            copy.skipIgnorable()
            return copy.i >= copy.s.count
        }

        /// Whitespace, `$` delimiters and layout commands that carry no value.
        mutating func skipIgnorable() {
            while i < s.count {
                let c = s[i]
                if c.properties.isWhitespace || c == "$" || c == "~" { i += 1; continue }
                if c == "\\", i + 1 < s.count {
                    let next = s[i + 1]
                    if [",", "!", ";", " ", ":"].contains(next) { i += 2; continue }
                    let (name, end) = commandName(at: i)
                    if ["left", "right", "displaystyle", "textstyle", "quad", "qquad", "bigl", "bigr", "Bigl", "Bigr", "big", "Big"].contains(name) {
                        i = end
                        continue
                    }
                }
                return
            }
        }

        func commandName(at start: Int) -> (String, Int) {
            var j = start + 1
            var name = String.UnicodeScalarView()
            while j < s.count, s[j].properties.isAlphabetic, s[j].isASCII {
                name.append(s[j])
                j += 1
            }
            return (String(name), j)
        }

        mutating func peek() -> Unicode.Scalar? {
            skipIgnorable()
            return i < s.count ? s[i] : nil
        }

        mutating func parseExpression() -> MathValue? {
            guard var value = parseTerm() else { return nil }
            while let c = peek() {
                if c == "+" {
                    i += 1
                    guard let rhs = parseTerm(), let sum = LatexArithmetic.add(value, rhs) else { return nil }
                    value = sum
                } else if c == "-" || c == "\u{2212}" {
                    i += 1
                    guard let rhs = parseTerm(), let negated = LatexArithmetic.negate(rhs),
                          let sum = LatexArithmetic.add(value, negated) else { return nil }
                    value = sum
                } else {
                    break
                }
            }
            return value
        }

        enum Operator { case multiply, divide }

        mutating func multiplicativeOperator() -> Operator? {
            guard let c = peek() else { return nil }
            switch c {
            case "*", "\u{00D7}", "\u{22C5}", "\u{00B7}": i += 1; return .multiply
            case "/", ":", "\u{00F7}": i += 1; return .divide
            case "\\":
                let (name, end) = commandName(at: i)
                switch name {
                case "times", "cdot", "ast": i = end; return .multiply
                case "div": i = end; return .divide
                default: return nil
                }
            default: return nil
            }
        }

        /// True when the next token starts a factor, so two factors side by side multiply.
        mutating func startsImplicitFactor() -> Bool {
            guard let c = peek() else { return false }
            if c.properties.numericType != nil && c.isASCII { return true }
            if c == "." || c == "(" || c == "{" || c == "[" || c == "\u{03C0}" || c == "\u{221A}" { return true }
            if c == "\\" {
                let (name, _) = commandName(at: i)
                return ["frac", "dfrac", "tfrac", "sqrt", "pi"].contains(name)
            }
            return false
        }

        mutating func parseTerm() -> MathValue? {
            guard var value = parseSigned() else { return nil }
            while true {
                if let op = multiplicativeOperator() {
                    guard let rhs = parseSigned() else { return nil }
                    switch op {
                    case .multiply:
                        guard let product = LatexArithmetic.multiply(value, rhs) else { return nil }
                        value = product
                    case .divide:
                        guard let quotient = LatexArithmetic.divide(value, rhs) else { return nil }
                        value = quotient
                    }
                } else if startsImplicitFactor() {
                    guard let rhs = parsePower(), let product = LatexArithmetic.multiply(value, rhs) else { return nil }
                    value = product
                } else {
                    return value
                }
            }
        }

        mutating func parseSigned() -> MathValue? {
            guard let c = peek() else { return nil }
            if c == "-" || c == "\u{2212}" {
                i += 1
                guard let inner = parseSigned() else { return nil }
                return LatexArithmetic.negate(inner)
            }
            if c == "+" {
                i += 1
                return parseSigned()
            }
            return parsePower()
        }

        mutating func parsePower() -> MathValue? {
            guard let base = parseAtom() else { return nil }
            guard peek() == "^" else { return base }
            i += 1
            let exponent: MathValue?
            if peek() == "{" {
                exponent = parseGroup(open: "{", close: "}")
            } else if let c = peek(), c == "-" || c == "+" {
                exponent = parseSigned()
            } else {
                // A bare exponent is one token, as latex2sympy's lexer reads it (`2^10` is 1024).
                exponent = parsePower()
            }
            guard let exponent else { return nil }
            return LatexArithmetic.power(base, exponent)
        }

        mutating func parseGroup(open: Unicode.Scalar, close: Unicode.Scalar) -> MathValue? {
            guard peek() == open else { return nil }
            i += 1
            guard let value = parseExpression(), peek() == close else { return nil }
            i += 1
            return value
        }

        /// A command argument: `{…}`, or a single digit or command (`\frac12`, `\sqrt2`).
        mutating func parseArgument() -> MathValue? {
            if peek() == "{" { return parseGroup(open: "{", close: "}") }
            return parseSingleArgument()
        }

        mutating func parseSingleArgument() -> MathValue? {
            guard let c = peek() else { return nil }
            if c.isASCII, let digit = Int(String(c)) {
                i += 1
                return .rational(digit, 1)
            }
            if c == "\\" || c == "\u{03C0}" { return parseAtom() }
            return nil
        }

        mutating func parseAtom() -> MathValue? {
            guard let c = peek() else { return nil }
            if c == "(" { return parseGroup(open: "(", close: ")") }
            if c == "{" { return parseGroup(open: "{", close: "}") }
            if c == "[" { return parseGroup(open: "[", close: "]") }
            if c == "\u{03C0}" { i += 1; return .real(Double.pi) }
            if c == "\u{221A}" {
                i += 1
                guard let radicand = parseArgumentOrAtom() else { return nil }
                return LatexArithmetic.root(radicand, degree: 2)
            }
            if (c.isASCII && c.properties.numericType != nil) || c == "." { return parseNumber() }
            if c == "\\" {
                let (name, end) = commandName(at: i)
                switch name {
                case "frac", "dfrac", "tfrac":
                    i = end
                    guard let numerator = parseArgument(), let denominator = parseArgument() else { return nil }
                    return LatexArithmetic.divide(numerator, denominator)
                case "sqrt":
                    i = end
                    var degree = 2
                    if peek() == "[" {
                        guard let index = parseGroup(open: "[", close: "]"), case .rational(let n, 1) = index, n >= 1 else { return nil }
                        degree = n
                    }
                    guard let radicand = parseArgumentOrAtom() else { return nil }
                    return LatexArithmetic.root(radicand, degree: degree)
                case "pi":
                    i = end
                    return .real(Double.pi)
                default:
                    return nil
                }
            }
            return nil
        }

        mutating func parseArgumentOrAtom() -> MathValue? {
            if peek() == "{" { return parseGroup(open: "{", close: "}") }
            return parseSingleArgument() ?? parseAtom()
        }

        /// Digits with an optional fraction: an integer literal is exact, a decimal is a float
        /// (sympy reads `0.5` as a `Float`).
        mutating func parseNumber() -> MathValue? {
            var text = ""
            var sawDot = false
            while i < s.count {
                let c = s[i]
                if c.isASCII, c.properties.numericType != nil {
                    text.unicodeScalars.append(c)
                } else if c == ".", !sawDot {
                    sawDot = true
                    text.unicodeScalars.append(c)
                } else {
                    break
                }
                i += 1
            }
            if text == "." { return nil }
            if !sawDot, let integer = Int(text) { return .rational(integer, 1) }
            guard let value = Double(text.hasPrefix(".") ? "0" + text : text) else { return nil }
            return .real(value)
        }
    }
}
