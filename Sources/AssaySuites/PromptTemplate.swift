import Foundation

/// A prompt template: `{name}` is replaced by a variable, and `[[ … ]]` marks an optional
/// section that is dropped when any variable inside it is empty. For example
///
///     [[Hint: {hint}
///     ]]Question: {question}
///     [[Options:
///     {options}
///     ]]Please select the correct answer from the options above.
///
/// `{{` and `}}` stand for literal braces.
public struct PromptTemplate: Sendable, Hashable {
    indirect enum Node: Sendable, Hashable {
        case literal(String)
        case variable(String)
        case optional([Node])
    }

    let nodes: [Node]
    public let source: String

    public init(_ source: String, file: String = "template") throws {
        self.source = source
        var index = source.startIndex
        nodes = try PromptTemplate.parse(source, &index, inOptional: false, file: file)
    }

    /// The variables the template uses, in order of appearance.
    public var variables: [String] {
        func collect(_ nodes: [Node]) -> [String] {
            nodes.flatMap { node -> [String] in
                switch node {
                case .literal: return []
                case .variable(let name): return [name]
                case .optional(let inner): return collect(inner)
                }
            }
        }
        return collect(nodes)
    }

    public func render(_ values: [String: String]) -> String {
        PromptTemplate.render(nodes, values) ?? ""
    }

    /// `nil` when a variable inside is missing or empty (which drops an optional section).
    private static func render(_ nodes: [Node], _ values: [String: String]) -> String? {
        var out = ""
        for node in nodes {
            switch node {
            case .literal(let text): out += text
            case .variable(let name):
                guard let value = values[name], !value.isEmpty else { return nil }
                out += value
            case .optional(let inner):
                out += render(inner, values) ?? ""
            }
        }
        return out
    }

    private static func parse(_ s: String, _ i: inout String.Index, inOptional: Bool, file: String) throws -> [Node] {
        var nodes: [Node] = []
        var literal = ""
        func flush() {
            if !literal.isEmpty { nodes.append(.literal(literal)); literal = "" }
        }
        while i < s.endIndex {
            let rest = s[i...]
            if rest.hasPrefix("{{") { literal += "{"; i = s.index(i, offsetBy: 2); continue }
            if rest.hasPrefix("}}") { literal += "}"; i = s.index(i, offsetBy: 2); continue }
            if rest.hasPrefix("[[") {
                flush()
                i = s.index(i, offsetBy: 2)
                nodes.append(.optional(try parse(s, &i, inOptional: true, file: file)))
                continue
            }
            if rest.hasPrefix("]]") {
                guard inOptional else { throw SuiteError.manifest(file: file, "template: ']]' without '[['") }
                flush()
                i = s.index(i, offsetBy: 2)
                return nodes
            }
            if s[i] == "{" {
                guard let close = s[i...].firstIndex(of: "}") else {
                    throw SuiteError.manifest(file: file, "template: '{' without '}'")
                }
                let name = String(s[s.index(after: i)..<close])
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }) else {
                    throw SuiteError.manifest(file: file, "template: bad variable name '{\(name)}'")
                }
                flush()
                nodes.append(.variable(name))
                i = s.index(after: close)
                continue
            }
            literal.append(s[i])
            i = s.index(after: i)
        }
        if inOptional { throw SuiteError.manifest(file: file, "template: '[[' without ']]'") }
        flush()
        return nodes
    }
}
