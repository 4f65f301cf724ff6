import Foundation

/// A compiled Jinja template: the subset chat templates use (Hugging Face `chat_template`, GGUF
/// `tokenizer.chat_template`), rendered with the semantics transformers gives them — jinja2 with
/// `trim_blocks` and `lstrip_blocks`, the `loopcontrols` extension, `raise_exception` and
/// `strftime_now` globals, and a `tojson` that keeps non-ASCII text.
///
/// Covered: `for` (with `loop.*`, tuple targets, `if` filters, `else`), `if`/`elif`/`else`,
/// `set` (names, `namespace` attributes, block form), `macro`, `break`/`continue`; literals of
/// every kind, subscripts and slices, attributes and the usual string/dict methods, arithmetic,
/// comparisons, `in`, `~`, conditional expressions, the common filters and tests. Anything else
/// is a `ChatTemplateError` that says what, never a silent difference.
public struct JinjaTemplate: @unchecked Sendable {  // @unchecked: the node tree is immutable after parsing
    let nodes: [JinjaNode]

    /// Parses `source`; a syntax error names the line.
    public init(source: String) throws {
        nodes = try JinjaParser(source: source).parse()
    }

    /// Renders with `context` as the global variables.
    func render(_ context: [String: JinjaValue]) throws -> String {
        let renderer = JinjaRenderer(globals: context)
        var out = ""
        _ = try renderer.run(nodes, into: &out)
        return out
    }
}

/// Walks the node tree. Scopes follow Jinja: a loop body (and a macro call) gets its own scope,
/// `if` does not; `set` writes to the innermost scope.
final class JinjaRenderer {
    enum Flow { case normal, breakLoop, continueLoop }

    private var scopes: [[String: JinjaValue]]
    private var depth = 0
    /// Deepest macro recursion: renders run on worker threads with small stacks.
    static let maximumDepth = 64

    init(globals: [String: JinjaValue]) {
        scopes = [Self.builtins, globals]
    }

    /// The global functions every template sees (built per render: values hold closures).
    static var builtins: [String: JinjaValue] { [
        "range": .function("range") { args, _ in
            let ints = try args.map { a -> Int in
                guard case .int(let i) = a else { throw ChatTemplateError.render(message: "range() needs integers, got \(a.typeName)") }
                return i
            }
            let (start, stop, step): (Int, Int, Int)
            switch ints.count {
            case 1: (start, stop, step) = (0, ints[0], 1)
            case 2: (start, stop, step) = (ints[0], ints[1], 1)
            case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
            default: throw ChatTemplateError.render(message: "range() takes 1 to 3 arguments")
            }
            guard step != 0 else { throw ChatTemplateError.render(message: "range() step must not be zero") }
            guard abs((stop - start) / step) <= 1_000_000 else { throw ChatTemplateError.render(message: "range() too long") }
            return .array(Array(stride(from: start, to: stop, by: step)).map { .int($0) })
        },
        "namespace": .function("namespace") { args, kwargs in
            var values: [String: JinjaValue] = [:]
            for a in args {
                if case .object(let keys, let v) = a { for k in keys { values[k] = v[k] } }
            }
            for (k, v) in kwargs { values[k] = v }
            return .namespace(JinjaNamespace(values))
        },
        "dict": .function("dict") { _, kwargs in .dict(kwargs) },
        "raise_exception": .function("raise_exception") { args, _ in
            throw ChatTemplateError.raised(message: args.first?.rendered ?? "")
        },
        "strftime_now": .function("strftime_now") { args, _ in
            guard case .string(let format)? = args.first else { throw ChatTemplateError.render(message: "strftime_now() needs a format string") }
            var t = time(nil)
            var parts = tm()
            localtime_r(&t, &parts)
            var buffer = [Int8](repeating: 0, count: 256)
            let n = strftime(&buffer, buffer.count, format, &parts)
            return .string(String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        },
    ] }

    // MARK: Statements

    func run(_ nodes: [JinjaNode], into out: inout String) throws -> Flow {
        for node in nodes {
            switch node {
            case .text(let t):
                out += t
            case .output(let e, _):
                out += try eval(e).rendered
            case .ifChain(let branches, let otherwise, _):
                var taken = false
                for b in branches {
                    guard try eval(b.condition).isTruthy else { continue }
                    taken = true
                    let flow = try run(b.body, into: &out)
                    if flow != .normal { return flow }
                    break
                }
                if !taken {
                    let flow = try run(otherwise, into: &out)
                    if flow != .normal { return flow }
                }
            case .forLoop(let targets, let iterable, let condition, let body, let otherwise, _):
                try runLoop(targets: targets, iterable: iterable, condition: condition, body: body, otherwise: otherwise, into: &out)
            case .set(let target, let attribute, let valueExpr, let line):
                let value = try eval(valueExpr)
                if let attribute {
                    guard case .namespace(let ns) = lookup(target[0]) else {
                        throw ChatTemplateError.render(message: "line \(line): cannot set '\(attribute)' on \(lookup(target[0]).typeName) '\(target[0])' (only on a namespace)")
                    }
                    ns.values[attribute] = value
                } else if target.count == 1 {
                    assign(target[0], value)
                } else {
                    let items = try value.iterated()
                    guard items.count == target.count else {
                        throw ChatTemplateError.render(message: "line \(line): cannot unpack \(items.count) values into \(target.count) names")
                    }
                    for (n, v) in zip(target, items) { assign(n, v) }
                }
            case .setBlock(let name, let body):
                var captured = ""
                _ = try run(body, into: &captured)
                assign(name, .string(captured))
            case .macro(let m):
                assign(m.name, .macro(m))
            case .breakLoop:
                return .breakLoop
            case .continueLoop:
                return .continueLoop
            }
        }
        return .normal
    }

    private func runLoop(targets: [String], iterable: JinjaExpr, condition: JinjaExpr?, body: [JinjaNode], otherwise: [JinjaNode],
                         into out: inout String) throws {
        var items = try eval(iterable).iterated()
        if let condition {
            // The `if` filter of a loop sees each item, and filtered items do not count in `loop`.
            var kept: [JinjaValue] = []
            for item in items {
                scopes.append([:])
                try bind(targets, item)
                let keep = try eval(condition).isTruthy
                scopes.removeLast()
                if keep { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            _ = try run(otherwise, into: &out)
            return
        }
        let n = items.count
        for (i, item) in items.enumerated() {
            scopes.append([:])
            defer { scopes.removeLast() }
            try bind(targets, item)
            assign("loop", .dict([
                ("index", .int(i + 1)), ("index0", .int(i)), ("revindex", .int(n - i)), ("revindex0", .int(n - i - 1)),
                ("first", .bool(i == 0)), ("last", .bool(i == n - 1)), ("length", .int(n)),
                ("previtem", i > 0 ? items[i - 1] : .undefined), ("nextitem", i + 1 < n ? items[i + 1] : .undefined),
            ]))
            let flow = try run(body, into: &out)
            if flow == .breakLoop { break }
        }
    }

    private func bind(_ targets: [String], _ item: JinjaValue) throws {
        if targets.count == 1 {
            assign(targets[0], item)
            return
        }
        let parts = try item.iterated()
        guard parts.count == targets.count else {
            throw ChatTemplateError.render(message: "cannot unpack \(parts.count) values into \(targets.joined(separator: ", "))")
        }
        for (t, v) in zip(targets, parts) { assign(t, v) }
    }

    private func assign(_ name: String, _ value: JinjaValue) {
        scopes[scopes.count - 1][name] = value
    }

    private func lookup(_ name: String) -> JinjaValue {
        for scope in scopes.reversed() { if let v = scope[name] { return v } }
        return .undefined
    }

    // MARK: Expressions

    func eval(_ e: JinjaExpr) throws -> JinjaValue {
        switch e {
        case .literal(let v): return v
        case .name(let n): return lookup(n)
        case .list(let items): return .array(try items.map(eval))
        case .dict(let pairs):
            return .dict(try pairs.map { (try eval($0.0).rendered, try eval($0.1)) })
        case .attribute(let base, let name):
            return try attribute(try eval(base), name)
        case .index(let base, let key):
            return try item(try eval(base), try eval(key))
        case .slice(let base, let start, let stop, let step):
            return try slice(try eval(base), start: try start.map(eval), stop: try stop.map(eval), step: try step.map(eval))
        case .call(let callee, let args, let kwargs):
            let f = try eval(callee)
            if case .undefined = f {
                // Name what was missing: a method on a value of the wrong type is the usual cause
                // (a string method called on a message whose content is a list of parts).
                switch callee {
                case .attribute(let base, let name):
                    throw ChatTemplateError.render(message: "\(try eval(base).typeName) has no method '\(name)'")
                case .name(let name):
                    throw ChatTemplateError.render(message: "'\(name)' is not defined")
                default: break
                }
            }
            return try call(f, try args.map(eval), try kwargs.map { ($0.0, try eval($0.1)) })
        case .filter(let base, let name, let args, let kwargs):
            return try JinjaFilters.apply(name, try eval(base), try args.map(eval), try kwargs.map { ($0.0, try eval($0.1)) }, renderer: self)
        case .test(let base, let name, let args, let negated):
            let r = try JinjaFilters.test(name, try eval(base), try args.map(eval))
            return .bool(negated ? !r : r)
        case .not(let x): return .bool(!(try eval(x).isTruthy))
        case .negate(let x):
            switch try eval(x) {
            case .int(let i): return .int(-i)
            case .double(let d): return .double(-d)
            case let v: throw ChatTemplateError.render(message: "cannot negate \(v.typeName)")
            }
        case .and(let a, let b):
            let l = try eval(a)
            return l.isTruthy ? try eval(b) : l
        case .or(let a, let b):
            let l = try eval(a)
            return l.isTruthy ? l : try eval(b)
        case .conditional(let condition, let then, let otherwise):
            if try eval(condition).isTruthy { return try eval(then) }
            return try otherwise.map(eval) ?? .undefined
        case .binary(let op, let a, let b):
            return try binary(op, try eval(a), try eval(b))
        }
    }

    func call(_ f: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
        switch f {
        case .function(_, let body):
            return try body(args, kwargs)
        case .macro(let m):
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maximumDepth else { throw ChatTemplateError.render(message: "macro '\(m.name)' recurses too deeply") }
            var scope: [String: JinjaValue] = [:]
            for (i, p) in m.parameters.enumerated() {
                if i < args.count { scope[p.name] = args[i] } else if let kw = kwargs.first(where: { $0.0 == p.name }) {
                    scope[p.name] = kw.1
                } else if let d = p.defaultValue {
                    scope[p.name] = try eval(d)
                } else {
                    scope[p.name] = .undefined
                }
            }
            // A macro sees the template's globals, not the caller's locals.
            let saved = scopes
            scopes = Array(scopes.prefix(2)) + [scope]
            defer { scopes = saved }
            var out = ""
            _ = try run(m.body, into: &out)
            return .string(out)
        default:
            throw ChatTemplateError.render(message: "\(f.typeName) is not callable")
        }
    }

    /// `base.name`: a dict key or namespace attribute first, else a method of the value's type.
    func attribute(_ base: JinjaValue, _ name: String) throws -> JinjaValue {
        switch base {
        case .object(_, let values):
            if let v = values[name] { return v }
        case .namespace(let ns):
            return ns.values[name] ?? .undefined
        default:
            break
        }
        return JinjaFilters.method(base, name) ?? .undefined
    }

    /// `base[key]`: dict keys, list and string indexes (negative from the end).
    func item(_ base: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
        switch (base, key) {
        case (.object(_, let values), _):
            return values[key.rendered] ?? .undefined
        case (.namespace(let ns), _):
            return ns.values[key.rendered] ?? .undefined
        case (.array(let a), .int(let i)):
            let j = i < 0 ? a.count + i : i
            return j >= 0 && j < a.count ? a[j] : .undefined
        case (.string(let s), .int(let i)):
            let chars = Array(s)
            let j = i < 0 ? chars.count + i : i
            return j >= 0 && j < chars.count ? .string(String(chars[j])) : .undefined
        case (_, .string(let name)):
            return try attribute(base, name)
        case (.undefined, _):
            return .undefined
        default:
            throw ChatTemplateError.render(message: "cannot index \(base.typeName) with \(key.typeName)")
        }
    }

    func slice(_ base: JinjaValue, start: JinjaValue?, stop: JinjaValue?, step: JinjaValue?) throws -> JinjaValue {
        func int(_ v: JinjaValue?) throws -> Int? {
            guard let v else { return nil }
            switch v {
            case .none, .undefined: return nil
            case .int(let i): return i
            default: throw ChatTemplateError.render(message: "slice indices must be integers, got \(v.typeName)")
            }
        }
        let st = try int(step) ?? 1
        guard st != 0 else { throw ChatTemplateError.render(message: "slice step cannot be zero") }
        func pick<T>(_ items: [T]) throws -> [T] {
            let n = items.count
            func clamp(_ i: Int?, _ dflt: Int) -> Int {
                guard var i else { return dflt }
                if i < 0 { i += n }
                return st > 0 ? min(max(i, 0), n) : min(max(i, -1), n - 1)
            }
            var out: [T] = []
            if st > 0 {
                var i = clamp(try int(start), 0)
                let e = clamp(try int(stop), n)
                while i < e { out.append(items[i]); i += st }
            } else {
                var i = clamp(try int(start), n - 1)
                let e = clamp(try int(stop), -1)
                while i > e { out.append(items[i]); i += st }
            }
            return out
        }
        switch base {
        case .array(let a): return .array(try pick(a))
        case .string(let s): return .string(String(try pick(Array(s))))
        case .undefined, .none: return .undefined
        default: throw ChatTemplateError.render(message: "cannot slice \(base.typeName)")
        }
    }

    func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        func fail() -> ChatTemplateError {
            .render(message: "unsupported operand types for \(op): \(a.typeName) and \(b.typeName)")
        }
        switch op {
        case "==": return .bool(a.equals(b))
        case "!=": return .bool(!a.equals(b))
        case "<", ">", "<=", ">=":
            guard let c = a.compare(b) else { throw fail() }
            switch op {
            case "<": return .bool(c == .orderedAscending)
            case ">": return .bool(c == .orderedDescending)
            case "<=": return .bool(c != .orderedDescending)
            default: return .bool(c != .orderedAscending)
            }
        case "in":
            switch b {
            case .string(let s):
                guard case .string(let needle) = a else { throw fail() }
                return .bool(needle.isEmpty || s.contains(needle))
            case .array(let items): return .bool(items.contains { $0.equals(a) })
            case .object(_, let values): return .bool(values[a.rendered] != nil)
            case .namespace(let ns): return .bool(ns.values[a.rendered] != nil)
            case .undefined, .none: return .bool(false)
            default: throw fail()
            }
        case "~":
            return .string(a.rendered + b.rendered)
        case "+":
            switch (a, b) {
            case (.int(let x), .int(let y)): return .int(x &+ y)
            case (.string(let x), .string(let y)): return .string(x + y)
            case (.array(let x), .array(let y)): return .array(x + y)
            default:
                guard let x = a.number, let y = b.number, !isString(a), !isString(b) else { throw fail() }
                return .double(x + y)
            }
        case "-":
            if case .int(let x) = a, case .int(let y) = b { return .int(x &- y) }
            guard let x = a.number, let y = b.number else { throw fail() }
            return .double(x - y)
        case "*":
            switch (a, b) {
            case (.int(let x), .int(let y)): return .int(x &* y)
            case (.string(let s), .int(let n)), (.int(let n), .string(let s)):
                return .string(String(repeating: s, count: max(0, min(n, 100_000))))
            default:
                guard let x = a.number, let y = b.number else { throw fail() }
                return .double(x * y)
            }
        case "/":
            guard let x = a.number, let y = b.number else { throw fail() }
            guard y != 0 else { throw ChatTemplateError.render(message: "division by zero") }
            return .double(x / y)
        case "//", "%":
            if case .int(let x) = a, case .int(let y) = b {
                guard y != 0 else { throw ChatTemplateError.render(message: "division by zero") }
                // Python floors toward negative infinity.
                let q = Int((Double(x) / Double(y)).rounded(.down))
                return .int(op == "//" ? q : x - q * y)
            }
            guard let x = a.number, let y = b.number, y != 0 else { throw fail() }
            let q = (x / y).rounded(.down)
            return .double(op == "//" ? q : x - q * y)
        case "**":
            if case .int(let x) = a, case .int(let y) = b, y >= 0 {
                return .double(pow(Double(x), Double(y))).asIntegerIfExact
            }
            guard let x = a.number, let y = b.number else { throw fail() }
            return .double(pow(x, y))
        default:
            throw ChatTemplateError.render(message: "unknown operator \(op)")
        }
    }

    private func isString(_ v: JinjaValue) -> Bool { if case .string = v { return true } else { return false } }
}

extension JinjaValue {
    /// An exact whole double as an int (integer powers).
    var asIntegerIfExact: JinjaValue {
        if case .double(let d) = self, d == d.rounded(), abs(d) < 9e15 { return .int(Int(d)) }
        return self
    }
}
