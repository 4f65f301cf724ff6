import Foundation

/// Why a chat template could not be compiled or rendered. Syntax errors name the template line.
public enum ChatTemplateError: Error, CustomStringConvertible, Equatable {
    /// The template does not parse (unknown tag, unclosed block, bad expression).
    case syntax(line: Int, message: String)
    /// Rendering failed: a type error, an unknown filter, a call of something that is not callable.
    case render(message: String)
    /// The template itself refused the conversation with `raise_exception(message)`.
    case raised(message: String)

    public var description: String {
        switch self {
        case .syntax(let line, let message): return "chat template, line \(line): \(message)"
        case .render(let message): return "chat template: \(message)"
        case .raised(let message): return "chat template refused the conversation: \(message)"
        }
    }
}

/// A mutable attribute bag (`namespace(...)`): the one value a template can change from inside a
/// loop, since `set` in a loop body is local to that iteration, as in Jinja.
final class JinjaNamespace {
    var values: [String: JinjaValue]
    init(_ values: [String: JinjaValue]) { self.values = values }
}

/// A macro defined by the template: parameters (with defaults) and the body to render.
final class JinjaMacro {
    let name: String
    let parameters: [(name: String, defaultValue: JinjaExpr?)]
    let body: [JinjaNode]
    init(name: String, parameters: [(name: String, defaultValue: JinjaExpr?)], body: [JinjaNode]) {
        self.name = name
        self.parameters = parameters
        self.body = body
    }
}

/// A value inside the template interpreter, with Python/Jinja semantics for truth, equality,
/// printing and ordering.
indirect enum JinjaValue {
    case undefined
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JinjaValue])
    /// A dict with its insertion order (Python dicts iterate in insertion order).
    case object(keys: [String], values: [String: JinjaValue])
    case namespace(JinjaNamespace)
    case macro(JinjaMacro)
    /// A built-in function (`range`, `namespace`, `raise_exception`, …) or a bound method.
    case function(String, (_ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue)

    static func dict(_ pairs: [(String, JinjaValue)]) -> JinjaValue {
        var keys: [String] = []
        var values: [String: JinjaValue] = [:]
        for (k, v) in pairs {
            if values[k] == nil { keys.append(k) }
            values[k] = v
        }
        return .object(keys: keys, values: values)
    }

    var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .array(let a): return !a.isEmpty
        case .object(let keys, _): return !keys.isEmpty
        case .namespace, .macro, .function: return true
        }
    }

    var isDefined: Bool { if case .undefined = self { return false } else { return true } }

    var typeName: String {
        switch self {
        case .undefined: return "undefined"
        case .none: return "none"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double: return "float"
        case .string: return "string"
        case .array: return "list"
        case .object: return "dict"
        case .namespace: return "namespace"
        case .macro, .function: return "function"
        }
    }

    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// How `{{ value }}` prints: Python's `str()`.
    var rendered: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr(top: true)
        }
    }

    /// Python's `repr()` for containers and `str()` for scalars at the top level.
    func repr(top: Bool = false) -> String {
        switch self {
        case .undefined: return top ? "" : "None"
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d):
            if d.isNaN { return "nan" }
            if d.isInfinite { return d > 0 ? "inf" : "-inf" }
            if d == d.rounded(), abs(d) < 1e16 { return String(format: "%.1f", d) }
            return "\(d)"
        case .string(let s): return top ? s : Self.pythonQuoted(s)
        case .array(let a): return "[" + a.map { $0.repr() }.joined(separator: ", ") + "]"
        case .object(let keys, let values):
            return "{" + keys.map { Self.pythonQuoted($0) + ": " + (values[$0] ?? .none).repr() }.joined(separator: ", ") + "}"
        case .namespace(let n):
            return "<Namespace " + n.values.keys.sorted().map { "\($0)=\(n.values[$0]?.repr() ?? "None")" }.joined(separator: ", ") + ">"
        case .macro(let m): return "<Macro '\(m.name)'>"
        case .function(let name, _): return "<function \(name)>"
        }
    }

    /// `s` with every scalar that `replacement` maps replaced by its escape.
    static func escaped(_ s: String, _ replacement: (Unicode.Scalar) -> String?) -> String {
        var out = ""
        for ch in s.unicodeScalars {
            if let r = replacement(ch) { out += r } else { out.unicodeScalars.append(ch) }
        }
        return out
    }

    /// The backslash escapes Python's repr and JSON share.
    static let controlEscapes: [Unicode.Scalar: String] = ["\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"]

    /// Python's `repr()` of a string: single quotes unless the text has one and no double quote.
    static func pythonQuoted(_ s: String) -> String {
        let quote: Unicode.Scalar = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        let q = String(Character(quote))
        return q + escaped(s) { controlEscapes[$0] ?? ($0 == quote ? "\\" + q : nil) } + q
    }

    /// JSON text (`tojson`): keys in insertion order, non-ASCII kept, as transformers' filter does.
    func json(indent: Int?, level: Int = 0) -> String {
        let pad = indent.map { String(repeating: " ", count: $0 * (level + 1)) }
        let closePad = indent.map { String(repeating: " ", count: $0 * level) }
        func wrap(_ items: [String], _ open: String, _ close: String) -> String {
            if items.isEmpty { return open + close }
            guard let pad, let closePad else { return open + items.joined(separator: ", ") + close }
            return open + "\n" + items.map { pad + $0 }.joined(separator: ",\n") + "\n" + closePad + close
        }
        switch self {
        case .undefined, .none: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double: return repr()
        case .string(let s): return Self.jsonQuoted(s)
        case .array(let a): return wrap(a.map { $0.json(indent: indent, level: level + 1) }, "[", "]")
        case .object(let keys, let values):
            return wrap(keys.map { Self.jsonQuoted($0) + ": " + (values[$0] ?? .none).json(indent: indent, level: level + 1) }, "{", "}")
        case .namespace(let n):
            return JinjaValue.dict(n.values.keys.sorted().map { ($0, n.values[$0] ?? .none) }).json(indent: indent, level: level)
        case .macro, .function: return "null"
        }
    }

    static func jsonQuoted(_ s: String) -> String {
        "\"" + escaped(s) { c in
            c == "\"" ? "\\\"" : controlEscapes[c] ?? (c.value < 0x20 ? String(format: "\\u%04x", c.value) : nil)
        } + "\""
    }

    /// Python `==` (numbers compare across int/float/bool; containers element-wise).
    func equals(_ other: JinjaValue) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a.count == b.count && zip(a, b).allSatisfy { $0.equals($1) }
        case (.object(let ka, let va), .object(let kb, let vb)):
            return Set(ka) == Set(kb) && ka.allSatisfy { k in (va[k] ?? .none).equals(vb[k] ?? .none) }
        case (.namespace(let a), .namespace(let b)): return a === b
        default:
            if let x = number, let y = other.number {
                if case .bool = self, case .bool = other { return x == y }
                return x == y
            }
            return false
        }
    }

    /// Python ordering for `<` and `sort`; nil when the types do not compare.
    func compare(_ other: JinjaValue) -> ComparisonResult? {
        if let x = number, let y = other.number { return x < y ? .orderedAscending : x > y ? .orderedDescending : .orderedSame }
        if case .string(let a) = self, case .string(let b) = other {
            // Python compares code points.
            let ua = Array(a.unicodeScalars.map(\.value)), ub = Array(b.unicodeScalars.map(\.value))
            return ua.lexicographicallyPrecedes(ub) ? .orderedAscending : ua == ub ? .orderedSame : .orderedDescending
        }
        if case .array(let a) = self, case .array(let b) = other {
            for (x, y) in zip(a, b) {
                guard let c = x.compare(y) else { return nil }
                if c != .orderedSame { return c }
            }
            return a.count < b.count ? .orderedAscending : a.count > b.count ? .orderedDescending : .orderedSame
        }
        return nil
    }

    /// The elements a `for` loop or `in` visits: list items, dict keys, string characters.
    func iterated() throws -> [JinjaValue] {
        switch self {
        case .array(let a): return a
        case .object(let keys, _): return keys.map { .string($0) }
        case .string(let s): return s.map { .string(String($0)) }
        case .undefined, .none: return []
        case .namespace(let n): return n.values.keys.sorted().map { .string($0) }
        default: throw ChatTemplateError.render(message: "\(typeName) is not iterable")
        }
    }
}
