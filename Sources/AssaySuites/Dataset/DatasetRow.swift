import AssayCore
import Foundation

/// One row of a dataset file: its values by column name and the line it starts on.
public struct DatasetRow: Sendable {
    public var file: String
    /// 1-based line of the file where the row starts (the header is line 1 of a TSV).
    public var line: Int
    public var values: [String: JSONValue]

    public init(file: String, line: Int, values: [String: JSONValue]) {
        self.file = file
        self.line = line
        self.values = values
    }

    /// The value as text; `nil` when the column is absent, null, empty or pandas' `nan`.
    public func text(_ column: String) -> String? {
        guard let value = values[column], let text = value.text else { return nil }
        if case .string = value, text.isEmpty || text == "nan" || text == "NaN" { return nil }
        return text
    }

    public func has(_ column: String) -> Bool { values[column] != nil }

    /// A list-valued column: a JSON array, or a string holding a JSON or Python list literal
    /// (`["a", "b"]`, `['a', 'b']`). A plain string is a one-element list. `nil` when absent.
    public func list(_ column: String) throws -> [String]? {
        guard let value = values[column] else { return nil }
        switch value {
        case .null: return nil
        case .array(let elements): return elements.compactMap(\.text)
        case .string(let text):
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed == "nan" { return nil }
            guard trimmed.hasPrefix("[") else { return [trimmed] }
            guard let parsed = ListLiteral.parse(trimmed) else {
                throw DatasetError(file: file, line: line, "column '\(column)' is not a valid list: \(trimmed.prefix(80))")
            }
            return parsed
        default:
            return value.text.map { [$0] }
        }
    }
}

/// Parses the list literals datasets store in text columns: JSON arrays and Python list reprs of
/// strings and numbers (`['a', "b's", 3]`). Never evaluates anything.
public enum ListLiteral {
    public static func parse(_ text: String) -> [String]? {
        let scalars = Array(text.unicodeScalars)
        var index = 0
        func skipSpace() { while index < scalars.count, scalars[index].properties.isWhitespace { index += 1 } }
        skipSpace()
        guard index < scalars.count, scalars[index] == "[" else { return nil }
        index += 1
        var items: [String] = []
        skipSpace()
        if index < scalars.count, scalars[index] == "]" {
            index += 1
            skipSpace()
            return index == scalars.count ? [] : nil
        }
        while index < scalars.count {
            skipSpace()
            guard index < scalars.count else { return nil }
            let c = scalars[index]
            if c == "'" || c == "\"" {
                guard let string = readQuoted(scalars, &index, quote: c) else { return nil }
                items.append(string)
            } else {
                // A bare token (number, None, True): up to the next comma or bracket.
                var token = String.UnicodeScalarView()
                while index < scalars.count, scalars[index] != ",", scalars[index] != "]" {
                    token.append(scalars[index])
                    index += 1
                }
                let value = String(token).trimmingCharacters(in: .whitespaces)
                guard !value.isEmpty else { return nil }
                items.append(value)
            }
            skipSpace()
            guard index < scalars.count else { return nil }
            if scalars[index] == "," {
                index += 1
                skipSpace()
                if index < scalars.count, scalars[index] == "]" { index += 1; break }  // trailing comma
            } else if scalars[index] == "]" {
                index += 1
                break
            } else {
                return nil
            }
        }
        skipSpace()
        return index == scalars.count ? items : nil
    }

    private static func readQuoted(_ scalars: [Unicode.Scalar], _ index: inout Int, quote: Unicode.Scalar) -> String? {
        index += 1
        var out = String.UnicodeScalarView()
        while index < scalars.count {
            let c = scalars[index]
            if c == "\\", index + 1 < scalars.count {
                let next = scalars[index + 1]
                switch next {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "u" where index + 5 < scalars.count:
                    let hex = String(String.UnicodeScalarView(scalars[(index + 2)...(index + 5)]))
                    if let code = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(code) {
                        out.append(scalar)
                        index += 6
                        continue
                    }
                    out.append(next)
                default: out.append(next)
                }
                index += 2
                continue
            }
            if c == quote {
                index += 1
                return String(out)
            }
            out.append(c)
            index += 1
        }
        return nil
    }
}
