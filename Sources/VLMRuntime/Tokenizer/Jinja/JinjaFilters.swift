import Foundation

/// The filters (`x | name(args)`), tests (`x is name`) and methods (`x.name(args)`) the template
/// engine knows: those Hugging Face chat templates use, with jinja2's / Python's behaviour.
enum JinjaFilters {
    static func apply(_ name: String, _ v: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)],
                      renderer: JinjaRenderer) throws -> JinjaValue {
        func arg(_ i: Int, _ key: String) -> JinjaValue? {
            if i < args.count { return args[i] }
            return kwargs.first { $0.0 == key }?.1
        }
        switch name {
        case "trim", "strip":
            return .string(v.rendered.trimmingCharacters(in: .whitespacesAndNewlines))
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.count)
            case .array(let a): return .int(a.count)
            case .object(let keys, _): return .int(keys.count)
            case .undefined, .none: return .int(0)
            default: throw ChatTemplateError.render(message: "\(v.typeName) has no length")
            }
        case "upper": return .string(v.rendered.uppercased())
        case "lower": return .string(v.rendered.lowercased())
        case "title": return .string(v.rendered.capitalized)
        case "capitalize":
            let s = v.rendered
            return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case "default", "d":
            let fallback = arg(0, "default_value") ?? .string("")
            let boolean = arg(1, "boolean")?.isTruthy ?? false
            if !v.isDefined || (boolean && !v.isTruthy) { return fallback }
            return v
        case "join":
            let sep = arg(0, "d")?.rendered ?? ""
            var items = try v.iterated()
            if let attr = arg(1, "attribute") { items = try items.map { try renderer.attribute($0, attr.rendered) } }
            return .string(items.map(\.rendered).joined(separator: sep))
        case "first": return try v.iterated().first ?? .undefined
        case "last": return try v.iterated().last ?? .undefined
        case "string": return .string(v.rendered)
        case "int":
            switch v {
            case .int: return v
            case .double(let d): return .int(Int(d))
            case .bool(let b): return .int(b ? 1 : 0)
            case .string(let s): return .int(Int(s.trimmingCharacters(in: .whitespaces)) ?? Int(Double(s) ?? 0))
            default: return arg(0, "default") ?? .int(0)
            }
        case "float":
            if let d = v.number { return .double(d) }
            if case .string(let s) = v, let d = Double(s.trimmingCharacters(in: .whitespaces)) { return .double(d) }
            return arg(0, "default") ?? .double(0)
        case "list": return .array(try v.iterated())
        case "items":
            guard case .object(let keys, let values) = v else {
                if !v.isDefined { return .array([]) }
                throw ChatTemplateError.render(message: "items needs a dict, got \(v.typeName)")
            }
            return .array(keys.map { .array([.string($0), values[$0] ?? .none]) })
        case "tojson":
            let indent: Int?
            if case .int(let i)? = arg(0, "indent") { indent = i } else { indent = nil }
            return .string(v.json(indent: indent))
        case "replace":
            guard let a = arg(0, "old"), let b = arg(1, "new") else { throw ChatTemplateError.render(message: "replace needs two arguments") }
            return .string(v.rendered.replacingOccurrences(of: a.rendered, with: b.rendered))
        case "safe": return v
        case "e", "escape":
            let html: [Unicode.Scalar: String] = ["&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&#34;", "'": "&#39;"]
            return .string(JinjaValue.escaped(v.rendered) { html[$0] })
        case "abs":
            switch v {
            case .int(let i): return .int(abs(i))
            case .double(let d): return .double(abs(d))
            default: throw ChatTemplateError.render(message: "abs needs a number, got \(v.typeName)")
            }
        case "round":
            guard let x = v.number else { throw ChatTemplateError.render(message: "round needs a number") }
            var precision = 0
            if case .int(let p)? = arg(0, "precision") { precision = p }
            let scale = pow(10.0, Double(precision))
            return .double((x * scale).rounded(.toNearestOrEven) / scale)
        case "reverse":
            if case .string(let s) = v { return .string(String(s.reversed())) }
            return .array(try v.iterated().reversed())
        case "sort":
            let reverse = arg(0, "reverse")?.isTruthy ?? false
            let attr = kwargs.first { $0.0 == "attribute" }?.1.rendered
            let items = try v.iterated()
            let keys = try items.map { item in try attr.map { try renderer.attribute(item, $0) } ?? item }
            var failed = false
            let order = items.indices.sorted { i, j in
                guard let c = keys[i].compare(keys[j]) else { failed = true; return i < j }
                return reverse ? c == .orderedDescending : c == .orderedAscending
            }
            if failed { throw ChatTemplateError.render(message: "sort: values do not compare") }
            return .array(order.map { items[$0] })
        case "unique":
            var out: [JinjaValue] = []
            for item in try v.iterated() where !out.contains(where: { $0.equals(item) }) { out.append(item) }
            return .array(out)
        case "map":
            let items = try v.iterated()
            if let attr = kwargs.first(where: { $0.0 == "attribute" })?.1.rendered {
                return .array(try items.map { try renderer.attribute($0, attr) })
            }
            guard case .string(let filter)? = args.first else { throw ChatTemplateError.render(message: "map needs a filter name or attribute=") }
            return .array(try items.map { try apply(filter, $0, Array(args.dropFirst()), [], renderer: renderer) })
        case "selectattr", "rejectattr":
            guard let attr = args.first?.rendered else { throw ChatTemplateError.render(message: "\(name) needs an attribute name") }
            let keep = name == "selectattr"
            return .array(try v.iterated().filter { item in
                let value = try renderer.attribute(item, attr)
                let passed: Bool
                if case .string(let test)? = args.dropFirst().first {
                    passed = try self.test(test, value, Array(args.dropFirst(2)))
                } else {
                    passed = value.isTruthy
                }
                return passed == keep
            })
        case "select", "reject":
            let keep = name == "select"
            return .array(try v.iterated().filter { item in
                let passed: Bool
                if case .string(let test)? = args.first { passed = try self.test(test, item, Array(args.dropFirst())) } else { passed = item.isTruthy }
                return passed == keep
            })
        case "indent":
            var width = "    "
            if let w = arg(0, "width") {
                if case .int(let n) = w { width = String(repeating: " ", count: max(0, n)) } else { width = w.rendered }
            }
            let first = arg(1, "first")?.isTruthy ?? false
            let blank = arg(2, "blank")?.isTruthy ?? false
            let lines = v.rendered.components(separatedBy: "\n")
            return .string(lines.enumerated().map { i, l in
                (i == 0 && !first) || (l.isEmpty && !blank) ? l : width + l
            }.joined(separator: "\n"))
        case "wordcount":
            return .int(v.rendered.split(whereSeparator: { $0.isWhitespace }).count)
        case "sum":
            var total: JinjaValue = .int(0)
            for item in try v.iterated() { total = try renderer.binary("+", total, item) }
            return total
        case "min", "max":
            let items = try v.iterated()
            guard var best = items.first else { return .undefined }
            for item in items.dropFirst() {
                guard let c = item.compare(best) else { throw ChatTemplateError.render(message: "\(name): values do not compare") }
                if (name == "min" && c == .orderedAscending) || (name == "max" && c == .orderedDescending) { best = item }
            }
            return best
        default:
            throw ChatTemplateError.render(message: "unknown filter '\(name)'")
        }
    }

    static func test(_ name: String, _ v: JinjaValue, _ args: [JinjaValue]) throws -> Bool {
        switch name {
        case "defined": return v.isDefined
        case "undefined": return !v.isDefined
        case "none": if case .none = v { return true } else { return false }
        case "string": if case .string = v { return true } else { return false }
        case "number": switch v { case .int, .double: return true; default: return false }
        case "integer": if case .int = v { return true } else { return false }
        case "float": if case .double = v { return true } else { return false }
        case "boolean": if case .bool = v { return true } else { return false }
        case "true": if case .bool(true) = v { return true } else { return false }
        case "false": if case .bool(false) = v { return true } else { return false }
        case "mapping": switch v { case .object, .namespace: return true; default: return false }
        case "iterable": switch v { case .array, .object, .string: return true; default: return false }
        case "sequence": switch v { case .array, .string, .object: return true; default: return false }
        case "callable": switch v { case .function, .macro: return true; default: return false }
        case "odd", "even":
            guard case .int(let i) = v else { throw ChatTemplateError.render(message: "\(name) needs an integer") }
            return (i % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard case .int(let i) = v, case .int(let d)? = args.first, d != 0 else {
                throw ChatTemplateError.render(message: "divisibleby needs integers")
            }
            return i % d == 0
        case "lower": return v.rendered == v.rendered.lowercased()
        case "upper": return v.rendered == v.rendered.uppercased()
        case "equalto", "eq", "==", "sameas":
            return v.equals(args.first ?? .undefined)
        case "ne", "!=": return !v.equals(args.first ?? .undefined)
        case "lt", "<", "gt", ">", "le", "<=", "ge", ">=":
            guard let other = args.first, let c = v.compare(other) else {
                throw ChatTemplateError.render(message: "test \(name): values do not compare")
            }
            switch name {
            case "lt", "<": return c == .orderedAscending
            case "gt", ">": return c == .orderedDescending
            case "le", "<=": return c != .orderedDescending
            default: return c != .orderedAscending
            }
        case "in":
            guard let container = args.first else { return false }
            switch container {
            case .array(let a): return a.contains { $0.equals(v) }
            case .string(let s): return s.contains(v.rendered)
            case .object(_, let values): return values[v.rendered] != nil
            default: return false
            }
        default:
            throw ChatTemplateError.render(message: "unknown test '\(name)'")
        }
    }

    /// A bound method of a string, list or dict, or nil when the type has no such method.
    static func method(_ base: JinjaValue, _ name: String) -> JinjaValue? {
        switch base {
        case .string(let s):
            switch name {
            case "strip", "lstrip", "rstrip":
                return .function(name) { args, _ in
                    let chars: Set<Character> = args.first.flatMap { if case .string(let c) = $0 { return Set(c) } else { return nil } }
                        ?? Set(" \t\n\r\u{0B}\u{0C}")
                    var out = Substring(s)
                    if name != "rstrip" { while let f = out.first, chars.contains(f) { out.removeFirst() } }
                    if name != "lstrip" { while let l = out.last, chars.contains(l) { out.removeLast() } }
                    return .string(String(out))
                }
            case "upper": return .function(name) { _, _ in .string(s.uppercased()) }
            case "lower": return .function(name) { _, _ in .string(s.lowercased()) }
            case "title": return .function(name) { _, _ in .string(s.capitalized) }
            case "capitalize": return .function(name) { _, _ in .string(s.prefix(1).uppercased() + s.dropFirst().lowercased()) }
            case "startswith", "endswith":
                return .function(name) { args, _ in
                    let candidates: [String]
                    switch args.first {
                    case .string(let p)?: candidates = [p]
                    case .array(let a)?: candidates = a.map(\.rendered)
                    default: throw ChatTemplateError.render(message: "\(name) needs a string")
                    }
                    return .bool(candidates.contains { name == "startswith" ? s.hasPrefix($0) : s.hasSuffix($0) })
                }
            case "split":
                return .function(name) { args, _ in
                    var limit = Int.max
                    if args.count > 1, case .int(let m) = args[1], m >= 0 { limit = m }
                    if case .string(let sep)? = args.first, !sep.isEmpty {
                        var parts: [String] = []
                        var rest = Substring(s)
                        while parts.count < limit, let r = rest.range(of: sep) {
                            parts.append(String(rest[..<r.lowerBound]))
                            rest = rest[r.upperBound...]
                        }
                        parts.append(String(rest))
                        return .array(parts.map { .string($0) })
                    }
                    return .array(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
                }
            case "replace":
                return .function(name) { args, _ in
                    guard args.count >= 2 else { throw ChatTemplateError.render(message: "replace needs two arguments") }
                    return .string(s.replacingOccurrences(of: args[0].rendered, with: args[1].rendered))
                }
            case "find":
                return .function(name) { args, _ in
                    guard let needle = args.first?.rendered, let r = s.range(of: needle) else { return .int(-1) }
                    return .int(s.distance(from: s.startIndex, to: r.lowerBound))
                }
            case "count":
                return .function(name) { args, _ in
                    guard let needle = args.first?.rendered, !needle.isEmpty else { return .int(0) }
                    return .int(s.components(separatedBy: needle).count - 1)
                }
            default: return nil
            }
        case .object(let keys, let values):
            switch name {
            case "items": return .function(name) { _, _ in .array(keys.map { .array([.string($0), values[$0] ?? .none]) }) }
            case "keys": return .function(name) { _, _ in .array(keys.map { .string($0) }) }
            case "values": return .function(name) { _, _ in .array(keys.map { values[$0] ?? .none }) }
            case "get":
                return .function(name) { args, _ in
                    guard let k = args.first else { return .none }
                    return values[k.rendered] ?? (args.count > 1 ? args[1] : .none)
                }
            default: return nil
            }
        case .array(let a):
            switch name {
            case "index":
                return .function(name) { args, _ in
                    guard let x = args.first, let i = a.firstIndex(where: { $0.equals(x) }) else {
                        throw ChatTemplateError.render(message: "index: value not in list")
                    }
                    return .int(i)
                }
            case "count":
                return .function(name) { args, _ in .int(a.filter { $0.equals(args.first ?? .undefined) }.count) }
            default: return nil
            }
        default:
            return nil
        }
    }
}
