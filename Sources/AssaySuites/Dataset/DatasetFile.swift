import AssayCore
import Foundation

/// A dataset file read into rows: a VLMEvalKit TSV (pandas' tab-separated format with minimal
/// quoting) or JSONL with the same keys. The SHA-256 of the file's bytes is kept as its checksum.
public struct DatasetFile: Sendable {
    public var url: URL
    public var rows: [DatasetRow]
    /// Columns in file order (TSV header, or first-seen order of JSONL keys).
    public var columns: [String]
    public var sha256: String

    public var name: String { url.lastPathComponent }

    public init(url: URL, rows: [DatasetRow], columns: [String], sha256: String) {
        self.url = url
        self.rows = rows
        self.columns = columns
        self.sha256 = sha256
    }

    /// Reads a `.tsv` or `.jsonl` (`.json` holding one object per line is read as JSONL).
    public static func read(_ url: URL) throws -> DatasetFile {
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatasetError(file: path, "cannot read file")
        }
        let sha = SHA256.hex(data)
        switch url.pathExtension.lowercased() {
        case "tsv":
            let (columns, rows) = try TSVReader.parse(data, file: path)
            return DatasetFile(url: url, rows: rows, columns: columns, sha256: sha)
        case "jsonl", "json", "ndjson":
            let (columns, rows) = try JSONLReader.parse(data, file: path)
            return DatasetFile(url: url, rows: rows, columns: columns, sha256: sha)
        default:
            throw DatasetError(file: path, "unsupported dataset format '.\(url.pathExtension)' (expected .tsv or .jsonl)")
        }
    }
}

/// Splits bytes into lines, failing on the first line that is not UTF-8.
enum TextLines {
    static func utf8Lines(_ data: Data, file: String) throws -> [(line: Int, text: String)] {
        var result: [(Int, String)] = []
        var lineNumber = 1
        try data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var start = 0
            func emit(_ end: Int) throws {
                var stop = end
                if stop > start, bytes[stop - 1] == 0x0D { stop -= 1 }
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<stop])
                guard let text = String(validating: slice, as: UTF8.self) else {
                    throw DatasetError(file: file, line: lineNumber, "not valid UTF-8")
                }
                result.append((lineNumber, text))
            }
            for i in 0..<bytes.count where bytes[i] == 0x0A {
                try emit(i)
                start = i + 1
                lineNumber += 1
            }
            if start < bytes.count { try emit(bytes.count) }
        }
        return result
    }
}

/// JSON Lines: one object per non-blank line.
enum JSONLReader {
    static func parse(_ data: Data, file: String) throws -> ([String], [DatasetRow]) {
        var columns: [String] = []
        var seen = Set<String>()
        var rows: [DatasetRow] = []
        let decoder = JSONDecoder()
        for (line, text) in try TextLines.utf8Lines(data, file: file) {
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            let object: [String: JSONValue]
            do {
                object = try decoder.decode([String: JSONValue].self, from: Data(trimmed.utf8))
            } catch {
                throw DatasetError(file: file, line: line, "not a JSON object: \(trimmed.prefix(60))")
            }
            for key in object.keys.sorted() where !seen.contains(key) {
                seen.insert(key)
                columns.append(key)
            }
            rows.append(DatasetRow(file: file, line: line, values: object))
        }
        return (columns, rows)
    }
}

/// pandas-style TSV: tab-separated, a header row, fields quoted with `"` when they hold a tab,
/// a quote or a newline (a quote inside is doubled).
enum TSVReader {
    static func parse(_ data: Data, file: String) throws -> ([String], [DatasetRow]) {
        var records: [(line: Int, fields: [String])] = []
        try data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            var fields: [String] = []
            var field: [UInt8] = []
            var inQuotes = false
            var fieldStarted = false
            var line = 1
            var recordLine = 1
            func finishField() throws {
                guard let text = String(validating: field, as: UTF8.self) else {
                    throw DatasetError(file: file, line: recordLine, "not valid UTF-8")
                }
                fields.append(text)
                field.removeAll(keepingCapacity: true)
                fieldStarted = false
            }
            func finishRecord() throws {
                try finishField()
                if !(fields.count == 1 && fields[0].isEmpty) { records.append((recordLine, fields)) }
                fields = []
            }
            var i = 0
            while i < bytes.count {
                let b = bytes[i]
                if inQuotes {
                    if b == 0x22 {
                        if i + 1 < bytes.count, bytes[i + 1] == 0x22 {
                            field.append(0x22)
                            i += 2
                            continue
                        }
                        inQuotes = false
                    } else {
                        if b == 0x0A { line += 1 }
                        field.append(b)
                    }
                    i += 1
                    continue
                }
                switch b {
                case 0x22 where !fieldStarted && field.isEmpty:
                    inQuotes = true
                    fieldStarted = true
                case 0x09:
                    try finishField()
                case 0x0A:
                    if field.last == 0x0D { field.removeLast() }
                    try finishRecord()
                    line += 1
                    recordLine = line
                default:
                    field.append(b)
                    fieldStarted = true
                }
                i += 1
            }
            if inQuotes {
                throw DatasetError(file: file, line: recordLine, "unterminated quoted field")
            }
            if !field.isEmpty || !fields.isEmpty {
                if field.last == 0x0D { field.removeLast() }
                try finishRecord()
            }
        }
        guard let header = records.first else {
            throw DatasetError(file: file, line: 1, "empty file: no header row")
        }
        var columns = header.fields
        // pandas writes an unnamed first column for the frame index when index=True.
        if let first = columns.first, first.isEmpty { columns[0] = "_row" }
        if let duplicate = firstDuplicate(columns) {
            throw DatasetError(file: file, line: 1, "duplicate column '\(duplicate)' in header")
        }
        var rows: [DatasetRow] = []
        rows.reserveCapacity(records.count - 1)
        for record in records.dropFirst() {
            guard record.fields.count == columns.count else {
                throw DatasetError(
                    file: file, line: record.line,
                    "expected \(columns.count) tab-separated fields (header), found \(record.fields.count)")
            }
            var values: [String: JSONValue] = [:]
            for (column, value) in zip(columns, record.fields) { values[column] = .string(value) }
            rows.append(DatasetRow(file: file, line: record.line, values: values))
        }
        return (columns, rows)
    }

    private static func firstDuplicate(_ columns: [String]) -> String? {
        var seen = Set<String>()
        for column in columns where !seen.insert(column).inserted { return column }
        return nil
    }
}
