import Foundation

/// An expression of the template language.
indirect enum JinjaExpr {
    case literal(JinjaValue)
    case name(String)
    case list([JinjaExpr])
    case dict([(JinjaExpr, JinjaExpr)])
    case attribute(JinjaExpr, String)
    case index(JinjaExpr, JinjaExpr)
    case slice(JinjaExpr, start: JinjaExpr?, stop: JinjaExpr?, step: JinjaExpr?)
    case call(JinjaExpr, args: [JinjaExpr], kwargs: [(String, JinjaExpr)])
    case filter(JinjaExpr, name: String, args: [JinjaExpr], kwargs: [(String, JinjaExpr)])
    case test(JinjaExpr, name: String, args: [JinjaExpr], negated: Bool)
    case not(JinjaExpr)
    case negate(JinjaExpr)
    case binary(String, JinjaExpr, JinjaExpr)
    case and(JinjaExpr, JinjaExpr)
    case or(JinjaExpr, JinjaExpr)
    case conditional(JinjaExpr, then: JinjaExpr, otherwise: JinjaExpr?)
}

/// A statement or piece of output of the template.
indirect enum JinjaNode {
    case text(String)
    case output(JinjaExpr, line: Int)
    case ifChain([(condition: JinjaExpr, body: [JinjaNode])], otherwise: [JinjaNode], line: Int)
    case forLoop(targets: [String], iterable: JinjaExpr, condition: JinjaExpr?, body: [JinjaNode], otherwise: [JinjaNode], line: Int)
    /// `set name = …`, `set ns.attr = …`, `set a, b = …`.
    case set(target: [String], attribute: String?, value: JinjaExpr, line: Int)
    /// `{% set name %}…{% endset %}`.
    case setBlock(name: String, body: [JinjaNode])
    case macro(JinjaMacro)
    case breakLoop
    case continueLoop
}

/// Splits template source into text and tags and parses it, with Jinja's whitespace rules as
/// transformers configures them: `trim_blocks` (the newline after a block tag is dropped) and
/// `lstrip_blocks` (spaces before a block tag on its own line are dropped), plus the explicit
/// `{%-` / `-%}` controls.
struct JinjaParser {
    enum Token: Equatable {
        case name(String)
        case string(String)
        case int(Int)
        case double(Double)
        case op(String)
    }

    enum Segment {
        case text(String)
        case expression([Token], line: Int)
        case statement([Token], line: Int)
    }

    let scalars: [Unicode.Scalar]
    var trimBlocks = true
    var lstripBlocks = true

    init(source: String) {
        scalars = Array(source.unicodeScalars)
    }

    // MARK: Lexing

    func segments() throws -> [Segment] {
        var out: [Segment] = []
        var i = 0
        var textStart = 0
        var line = 1
        var pendingText = String.UnicodeScalarView()
        let n = scalars.count

        func flushText(stripTrailing: Bool, lstripTo: Int?) {
            var text = pendingText
            if stripTrailing {
                while let last = text.last, last.properties.isWhitespace { text.removeLast() }
            } else if let cut = lstripTo {
                // Remove the spaces/tabs between the line start and the tag.
                let drop = i - cut
                for _ in 0..<min(drop, text.count) { text.removeLast() }
            }
            if !text.isEmpty { out.append(.text(String(text))) }
            pendingText = String.UnicodeScalarView()
        }

        while i < n {
            if scalars[i] == "{", i + 1 < n, scalars[i + 1] == "{" || scalars[i + 1] == "%" || scalars[i + 1] == "#" {
                let kind = scalars[i + 1]
                var j = i + 2
                var stripBefore = false, keepSpaces = false
                if j < n && scalars[j] == "-" { stripBefore = true; j += 1 } else if j < n && scalars[j] == "+" { keepSpaces = true; j += 1 }
                // lstrip_blocks: a block tag preceded on its line only by spaces/tabs.
                var lstripTo: Int? = nil
                if lstripBlocks && kind != "{" && !keepSpaces {
                    var k = i - 1
                    while k >= textStart && (scalars[k] == " " || scalars[k] == "\t") { k -= 1 }
                    if k < 0 || scalars[k] == "\n" { lstripTo = k + 1 }
                }
                flushText(stripTrailing: stripBefore, lstripTo: lstripTo)
                let tagLine = line
                var stripAfter = false
                if kind == "#" {
                    guard let close = find("#}", from: j) else { throw ChatTemplateError.syntax(line: tagLine, message: "unclosed comment") }
                    for k in j..<close where scalars[k] == "\n" { line += 1 }
                    stripAfter = close > j && scalars[close - 1] == "-"
                    i = close + 2
                } else {
                    let closer: String = kind == "{" ? "}}" : "%}"
                    var tokens: [Token] = []
                    (tokens, j, stripAfter) = try lexTag(from: j, closer: closer, line: &line)
                    out.append(kind == "{" ? .expression(tokens, line: tagLine) : .statement(tokens, line: tagLine))
                    i = j
                }
                if stripAfter {
                    while i < n && scalars[i].properties.isWhitespace {
                        if scalars[i] == "\n" { line += 1 }
                        i += 1
                    }
                } else if trimBlocks && kind != "{" {
                    if i < n && scalars[i] == "\n" { i += 1; line += 1 } else if i + 1 < n && scalars[i] == "\r" && scalars[i + 1] == "\n" { i += 2; line += 1 }
                }
                textStart = i
                continue
            }
            if scalars[i] == "\n" { line += 1 }
            pendingText.append(scalars[i])
            i += 1
        }
        flushText(stripTrailing: false, lstripTo: nil)
        return out
    }

    private func find(_ s: String, from: Int) -> Int? {
        let pattern = Array(s.unicodeScalars)
        var i = from
        while i + pattern.count <= scalars.count {
            if Array(scalars[i..<(i + pattern.count)]) == pattern { return i }
            i += 1
        }
        return nil
    }

    /// Tokens of one tag up to its closing delimiter; returns them, the index after the closer and
    /// whether the closer asked to strip the whitespace that follows (`-%}`).
    private func lexTag(from start: Int, closer: String, line: inout Int) throws -> ([Token], Int, Bool) {
        let c0 = closer.unicodeScalars.first!, c1 = closer.unicodeScalars.last! // invariant: closer is a two-character literal
        var tokens: [Token] = []
        var i = start
        let n = scalars.count
        let startLine = line
        while i < n {
            let ch = scalars[i]
            if ch == "\n" { line += 1; i += 1; continue }
            if ch.properties.isWhitespace { i += 1; continue }
            if ch == "-", i + 2 < n, scalars[i + 1] == c0, scalars[i + 2] == c1 { return (tokens, i + 3, true) }
            if ch == c0, i + 1 < n, scalars[i + 1] == c1 { return (tokens, i + 2, false) }
            if ch == "'" || ch == "\"" {
                var s = String.UnicodeScalarView()
                var j = i + 1
                var closed = false
                while j < n {
                    let c = scalars[j]
                    if c == ch { closed = true; break }
                    if c == "\\", j + 1 < n {
                        let e = scalars[j + 1]
                        switch e {
                        case "n": s.append("\n")
                        case "t": s.append("\t")
                        case "r": s.append("\r")
                        case "\\": s.append("\\")
                        case "'": s.append("'")
                        case "\"": s.append("\"")
                        default: s.append("\\"); s.append(e)
                        }
                        j += 2
                        continue
                    }
                    if c == "\n" { line += 1 }
                    s.append(c)
                    j += 1
                }
                guard closed else { throw ChatTemplateError.syntax(line: line, message: "unterminated string") }
                tokens.append(.string(String(s)))
                i = j + 1
                continue
            }
            if ch.properties.numericType != nil, ch.isASCII {
                var j = i
                var text = ""
                var isDouble = false
                while j < n, scalars[j].isASCII, scalars[j].properties.numericType != nil || scalars[j] == "_" ||
                        (scalars[j] == "." && !isDouble && j + 1 < n && scalars[j + 1].properties.numericType != nil) {
                    if scalars[j] == "." { isDouble = true }
                    if scalars[j] != "_" { text.unicodeScalars.append(scalars[j]) }
                    j += 1
                }
                if isDouble, let d = Double(text) { tokens.append(.double(d)) } else if let v = Int(text) { tokens.append(.int(v)) } else {
                    throw ChatTemplateError.syntax(line: line, message: "bad number \(text)")
                }
                i = j
                continue
            }
            if ch == "_" || ch.properties.isAlphabetic {
                var j = i
                var text = ""
                while j < n, scalars[j] == "_" || scalars[j].properties.isAlphabetic || (scalars[j].isASCII && scalars[j].properties.numericType != nil) {
                    text.unicodeScalars.append(scalars[j])
                    j += 1
                }
                tokens.append(.name(text))
                i = j
                continue
            }
            let two = i + 1 < n ? String(String.UnicodeScalarView([ch, scalars[i + 1]])) : ""
            if ["==", "!=", "<=", ">=", "//", "**"].contains(two) {
                tokens.append(.op(two))
                i += 2
                continue
            }
            if "+-*/%~|.,:()[]{}<>=!".unicodeScalars.contains(ch) {
                tokens.append(.op(String(ch)))
                i += 1
                continue
            }
            throw ChatTemplateError.syntax(line: line, message: "unexpected character '\(ch)'")
        }
        throw ChatTemplateError.syntax(line: startLine, message: "tag not closed with '\(closer)'")
    }

    // MARK: Statements

    /// The whole template as a list of nodes.
    func parse() throws -> [JinjaNode] {
        var cursor = SegmentCursor(segments: try segments())
        let (nodes, end) = try parseBody(&cursor, until: [])
        if let end { throw ChatTemplateError.syntax(line: end.line, message: "unexpected '\(end.keyword)'") }
        return nodes
    }

    struct SegmentCursor {
        let segments: [Segment]
        var index = 0
        /// Blocks open around the current position (a bound keeps a hostile template off the stack's end).
        var depth = 0
    }

    /// Deepest nesting of blocks, or of brackets in one expression, the parser accepts.
    static let maximumNesting = 256

    /// Parses nodes until a statement whose first word is in `until`; returns the nodes and that
    /// statement (keyword, remaining tokens, line), or nil at the end of the template.
    private func parseBody(_ cursor: inout SegmentCursor, until: Set<String>) throws
        -> ([JinjaNode], (keyword: String, tokens: [Token], line: Int)?) {
        cursor.depth += 1
        defer { cursor.depth -= 1 }
        if cursor.depth > Self.maximumNesting {
            throw ChatTemplateError.syntax(line: 0, message: "blocks nested more than \(Self.maximumNesting) deep")
        }
        var nodes: [JinjaNode] = []
        while cursor.index < cursor.segments.count {
            let segment = cursor.segments[cursor.index]
            cursor.index += 1
            switch segment {
            case .text(let t):
                nodes.append(.text(t))
            case .expression(let tokens, let line):
                var p = ExpressionParser(tokens: tokens, line: line)
                let e = try p.parseExpression()
                try p.expectEnd()
                nodes.append(.output(e, line: line))
            case .statement(let tokens, let line):
                guard case .name(let keyword)? = tokens.first else {
                    throw ChatTemplateError.syntax(line: line, message: "empty or malformed statement")
                }
                let rest = Array(tokens.dropFirst())
                if until.contains(keyword) { return (nodes, (keyword, rest, line)) }
                nodes.append(try parseStatement(keyword, rest, line: line, &cursor))
            }
        }
        return (nodes, nil)
    }

    private func expectClosed(_ end: (keyword: String, tokens: [Token], line: Int)?, _ keyword: String, opened line: Int) throws -> (keyword: String, tokens: [Token], line: Int) {
        guard let end else { throw ChatTemplateError.syntax(line: line, message: "'\(keyword)' is never closed") }
        return end
    }

    private func parseStatement(_ keyword: String, _ tokens: [Token], line: Int, _ cursor: inout SegmentCursor) throws -> JinjaNode {
        switch keyword {
        case "if":
            var branches: [(condition: JinjaExpr, body: [JinjaNode])] = []
            var condition = try Self.expression(tokens, line: line)
            var otherwise: [JinjaNode] = []
            while true {
                let (body, e) = try parseBody(&cursor, until: ["elif", "else", "endif"])
                let end = try expectClosed(e, "if", opened: line)
                branches.append((condition, body))
                if end.keyword == "elif" {
                    condition = try Self.expression(end.tokens, line: end.line)
                    continue
                }
                if end.keyword == "else" {
                    let (elseBody, e2) = try parseBody(&cursor, until: ["endif"])
                    _ = try expectClosed(e2, "if", opened: line)
                    otherwise = elseBody
                }
                break
            }
            return .ifChain(branches, otherwise: otherwise, line: line)
        case "for":
            var p = ExpressionParser(tokens: tokens, line: line)
            var targets: [String] = []
            repeat {
                guard case .name(let n)? = p.next() else { throw ChatTemplateError.syntax(line: line, message: "for: expected a loop variable") }
                targets.append(n)
            } while p.accept(.op(","))
            guard p.accept(.name("in")) else { throw ChatTemplateError.syntax(line: line, message: "for: expected 'in'") }
            let iterable = try p.parseOr(allowConditional: false)
            var condition: JinjaExpr? = nil
            if p.accept(.name("if")) { condition = try p.parseOr(allowConditional: false) }
            _ = p.accept(.name("recursive"))
            try p.expectEnd()
            let (body, e) = try parseBody(&cursor, until: ["else", "endfor"])
            let end = try expectClosed(e, "for", opened: line)
            var otherwise: [JinjaNode] = []
            if end.keyword == "else" {
                let (elseBody, e2) = try parseBody(&cursor, until: ["endfor"])
                _ = try expectClosed(e2, "for", opened: line)
                otherwise = elseBody
            }
            return .forLoop(targets: targets, iterable: iterable, condition: condition, body: body, otherwise: otherwise, line: line)
        case "set":
            var p = ExpressionParser(tokens: tokens, line: line)
            guard case .name(let first)? = p.next() else { throw ChatTemplateError.syntax(line: line, message: "set: expected a name") }
            if p.atEnd {
                let (body, e) = try parseBody(&cursor, until: ["endset"])
                _ = try expectClosed(e, "set", opened: line)
                return .setBlock(name: first, body: body)
            }
            var targets = [first]
            var attribute: String? = nil
            if p.accept(.op(".")) {
                guard case .name(let a)? = p.next() else { throw ChatTemplateError.syntax(line: line, message: "set: expected an attribute name") }
                attribute = a
            } else {
                while p.accept(.op(",")) {
                    guard case .name(let n)? = p.next() else { throw ChatTemplateError.syntax(line: line, message: "set: expected a name") }
                    targets.append(n)
                }
            }
            guard p.accept(.op("=")) else { throw ChatTemplateError.syntax(line: line, message: "set: expected '='") }
            let value = try p.parseExpression()
            try p.expectEnd()
            return .set(target: targets, attribute: attribute, value: value, line: line)
        case "macro":
            var p = ExpressionParser(tokens: tokens, line: line)
            guard case .name(let name)? = p.next(), p.accept(.op("(")) else {
                throw ChatTemplateError.syntax(line: line, message: "macro: expected a name and a parameter list")
            }
            var params: [(name: String, defaultValue: JinjaExpr?)] = []
            if !p.accept(.op(")")) {
                repeat {
                    guard case .name(let pn)? = p.next() else { throw ChatTemplateError.syntax(line: line, message: "macro: expected a parameter name") }
                    params.append((pn, p.accept(.op("=")) ? try p.parseExpression() : nil))
                } while p.accept(.op(","))
                guard p.accept(.op(")")) else { throw ChatTemplateError.syntax(line: line, message: "macro: expected ')'") }
            }
            try p.expectEnd()
            let (body, e) = try parseBody(&cursor, until: ["endmacro"])
            _ = try expectClosed(e, "macro", opened: line)
            return .macro(JinjaMacro(name: name, parameters: params, body: body))
        case "break": return .breakLoop
        case "continue": return .continueLoop
        case "generation":
            // transformers' assistant-mask marker: renders its body unchanged.
            let (body, e) = try parseBody(&cursor, until: ["endgeneration"])
            _ = try expectClosed(e, "generation", opened: line)
            return .ifChain([(.literal(.bool(true)), body)], otherwise: [], line: line)
        default:
            throw ChatTemplateError.syntax(line: line, message: "unknown or misplaced tag '\(keyword)'")
        }
    }

    static func expression(_ tokens: [Token], line: Int) throws -> JinjaExpr {
        var p = ExpressionParser(tokens: tokens, line: line)
        let e = try p.parseExpression()
        try p.expectEnd()
        return e
    }
}

/// Recursive descent over one tag's tokens, with Jinja's precedence: conditional expression, `or`,
/// `and`, `not`, comparisons (`==` … `in`, `not in`), `+ -`, `~`, `* / // %`, `**`, unary minus,
/// then a primary with its postfixes (`.attr`, `[…]`, calls), filters (`|`) and tests (`is`).
struct ExpressionParser {
    typealias Token = JinjaParser.Token
    let tokens: [Token]
    let line: Int
    var index = 0
    /// Expressions open around the current token (see `JinjaParser.maximumNesting`).
    var depth = 0

    init(tokens: [Token], line: Int) {
        self.tokens = tokens
        self.line = line
    }

    var atEnd: Bool { index >= tokens.count }
    var peek: Token? { index < tokens.count ? tokens[index] : nil }

    mutating func next() -> Token? {
        defer { index += 1 }
        return peek
    }

    mutating func accept(_ t: Token) -> Bool {
        if peek == t { index += 1; return true }
        return false
    }

    func error(_ message: String) -> ChatTemplateError { .syntax(line: line, message: message) }

    func expectEnd() throws {
        if let t = peek { throw error("unexpected \(describe(t))") }
    }

    func describe(_ t: Token) -> String {
        switch t {
        case .name(let n): return "'\(n)'"
        case .string(let s): return "string '\(s)'"
        case .int(let i): return "\(i)"
        case .double(let d): return "\(d)"
        case .op(let o): return "'\(o)'"
        }
    }

    mutating func expect(_ t: Token) throws {
        guard accept(t) else { throw error("expected \(describe(t))\(peek.map { ", found " + describe($0) } ?? " at the end")") }
    }

    mutating func parseExpression() throws -> JinjaExpr {
        depth += 1
        defer { depth -= 1 }
        guard depth <= JinjaParser.maximumNesting else { throw error("expression nested more than \(JinjaParser.maximumNesting) deep") }
        return try parseOr(allowConditional: true)
    }

    /// One more level of nesting for the expression being parsed: brackets recurse, and operator
    /// chains (`a + b + …`, `x | f | g …`, `a.b.c…`) nest the tree without recursing here but
    /// would make its evaluation and its release recurse. The caller gives the levels back.
    mutating func nest() throws {
        depth += 1
        guard depth <= JinjaParser.maximumNesting else { throw error("expression nested more than \(JinjaParser.maximumNesting) deep") }
    }

    /// `step` applied to `start` again and again (each application one level of nesting) until it
    /// returns nil: the shape of every operator chain.
    mutating func chain(_ start: JinjaExpr, _ step: (inout ExpressionParser, JinjaExpr) throws -> JinjaExpr?) throws -> JinjaExpr {
        let outer = depth
        defer { depth = outer }
        var e = start
        while true {
            try nest()
            guard let next = try step(&self, e) else { return e }
            e = next
        }
    }

    mutating func parseOr(allowConditional: Bool) throws -> JinjaExpr {
        let e = try chain(try parseAnd()) { p, e in p.accept(.name("or")) ? .or(e, try p.parseAnd()) : nil }
        if allowConditional, accept(.name("if")) {
            let condition = try parseOr(allowConditional: false)
            let otherwise = accept(.name("else")) ? try parseExpression() : nil
            return .conditional(condition, then: e, otherwise: otherwise)
        }
        return e
    }

    mutating func parseAnd() throws -> JinjaExpr {
        try chain(try parseNot()) { p, e in p.accept(.name("and")) ? .and(e, try p.parseNot()) : nil }
    }

    mutating func parseNot() throws -> JinjaExpr {
        guard accept(.name("not")) else { return try parseCompare() }
        try nest()
        defer { depth -= 1 }
        return .not(try parseNot())
    }

    mutating func parseCompare() throws -> JinjaExpr {
        try chain(try parseAdd()) { p, e in
            if let t = p.peek, case .op(let o) = t, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                p.index += 1
                return .binary(o, e, try p.parseAdd())
            }
            if p.accept(.name("in")) { return .binary("in", e, try p.parseAdd()) }
            if p.peek == .name("not"), p.index + 1 < p.tokens.count, p.tokens[p.index + 1] == .name("in") {
                p.index += 2
                return .not(.binary("in", e, try p.parseAdd()))
            }
            return nil
        }
    }

    /// One left-associative level of binary operators over the next tighter level.
    mutating func parseLevel(_ ops: Set<String>, _ next: (inout ExpressionParser) throws -> JinjaExpr) throws -> JinjaExpr {
        try chain(try next(&self)) { p, e in
            guard let t = p.peek, case .op(let o) = t, ops.contains(o) else { return nil }
            p.index += 1
            return .binary(o, e, try next(&p))
        }
    }

    mutating func parseAdd() throws -> JinjaExpr { try parseLevel(["+", "-"]) { try $0.parseConcat() } }
    mutating func parseConcat() throws -> JinjaExpr { try parseLevel(["~"]) { try $0.parseMultiply() } }
    mutating func parseMultiply() throws -> JinjaExpr { try parseLevel(["*", "/", "//", "%"]) { try $0.parsePower() } }
    mutating func parsePower() throws -> JinjaExpr { try parseLevel(["**"]) { try $0.parseUnary() } }

    mutating func parseUnary() throws -> JinjaExpr {
        if accept(.op("-")) { return try parseFilters(.negate(try parseUnaryOperand())) }
        if accept(.op("+")) { return try parseFilters(try parseUnaryOperand()) }
        return try parseFilters(try parsePostfix(try parsePrimary()))
    }

    private mutating func parseUnaryOperand() throws -> JinjaExpr {
        if accept(.op("-")) {
            try nest()
            defer { depth -= 1 }
            return .negate(try parseUnaryOperand())
        }
        return try parsePostfix(try parsePrimary())
    }

    mutating func parseFilters(_ base: JinjaExpr) throws -> JinjaExpr {
        try chain(base) { p, e in
            if p.accept(.op("|")) {
                guard case .name(var name)? = p.next() else { throw p.error("expected a filter name after '|'") }
                while p.accept(.op(".")) {
                    guard case .name(let part)? = p.next() else { throw p.error("expected a filter name") }
                    name += "." + part
                }
                var args: [JinjaExpr] = [], kwargs: [(String, JinjaExpr)] = []
                if p.accept(.op("(")) { (args, kwargs) = try p.parseArguments() }
                return .filter(e, name: name, args: args, kwargs: kwargs)
            }
            guard p.accept(.name("is")) else { return nil }
            let negated = p.accept(.name("not"))
            guard case .name(let name)? = p.next() else { throw p.error("expected a test name after 'is'") }
            var args: [JinjaExpr] = []
            if p.accept(.op("(")) {
                args = try p.parseArguments().args
            } else if let t = p.peek, Self.startsOperand(t) {
                // `is divisibleby 3`, `is sameas none`: one argument without parentheses.
                args = [try p.parsePostfix(try p.parsePrimary())]
            }
            return .test(e, name: name, args: args, negated: negated)
        }
    }

    static func startsOperand(_ t: Token) -> Bool {
        switch t {
        case .string, .int, .double: return true
        case .name(let n): return !["and", "or", "if", "else", "in", "not", "is", "recursive"].contains(n)
        case .op(let o): return o == "(" || o == "[" || o == "{"
        }
    }

    mutating func parsePostfix(_ base: JinjaExpr) throws -> JinjaExpr {
        try chain(base) { p, e in
            if p.accept(.op(".")) {
                switch p.next() {
                case .name(let n)?: return .attribute(e, n)
                case .int(let i)?: return .index(e, .literal(.int(i)))
                default: throw p.error("expected an attribute name after '.'")
                }
            }
            if p.accept(.op("(")) {
                let (args, kwargs) = try p.parseArguments()
                return .call(e, args: args, kwargs: kwargs)
            }
            guard p.accept(.op("[")) else { return nil }
            var start: JinjaExpr? = nil
            if p.peek != .op(":") { start = try p.parseExpression() }
            guard p.accept(.op(":")) else {
                try p.expect(.op("]"))
                guard let start else { throw p.error("empty subscript") }
                return .index(e, start)
            }
            var stop: JinjaExpr? = nil, step: JinjaExpr? = nil
            if p.peek != .op(":") && p.peek != .op("]") { stop = try p.parseExpression() }
            if p.accept(.op(":")), p.peek != .op("]") { step = try p.parseExpression() }
            try p.expect(.op("]"))
            return .slice(e, start: start, stop: stop, step: step)
        }
    }

    /// Arguments after an opening parenthesis, through the closing one.
    mutating func parseArguments() throws -> (args: [JinjaExpr], kwargs: [(String, JinjaExpr)]) {
        var args: [JinjaExpr] = [], kwargs: [(String, JinjaExpr)] = []
        if accept(.op(")")) { return (args, kwargs) }
        repeat {
            if peek == .op(")") { break }  // trailing comma
            if case .name(let n)? = peek, index + 1 < tokens.count, tokens[index + 1] == .op("=") {
                index += 2
                kwargs.append((n, try parseExpression()))
            } else {
                guard kwargs.isEmpty else { throw error("positional argument after a keyword argument") }
                args.append(try parseExpression())
            }
        } while accept(.op(","))
        try expect(.op(")"))
        return (args, kwargs)
    }

    mutating func parsePrimary() throws -> JinjaExpr {
        guard let t = next() else { throw error("expression expected") }
        switch t {
        case .string(var s):
            // Adjacent string literals concatenate, as in Python.
            while case .string(let more)? = peek { s += more; index += 1 }
            return .literal(.string(s))
        case .int(let i): return .literal(.int(i))
        case .double(let d): return .literal(.double(d))
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .op("("):
            let e = try parseExpression()
            if accept(.op(",")) {
                // A tuple: treated as a list.
                var items = [e]
                while peek != .op(")") {
                    items.append(try parseExpression())
                    if !accept(.op(",")) { break }
                }
                try expect(.op(")"))
                return .list(items)
            }
            try expect(.op(")"))
            return e
        case .op("["):
            var items: [JinjaExpr] = []
            while !accept(.op("]")) {
                items.append(try parseExpression())
                if !accept(.op(",")) { try expect(.op("]")); break }
            }
            return .list(items)
        case .op("{"):
            var pairs: [(JinjaExpr, JinjaExpr)] = []
            while !accept(.op("}")) {
                let k = try parseExpression()
                try expect(.op(":"))
                pairs.append((k, try parseExpression()))
                if !accept(.op(",")) { try expect(.op("}")); break }
            }
            return .dict(pairs)
        default:
            throw error("unexpected \(describe(t))")
        }
    }
}
