import AssayCore
import Foundation

/// One line of a predictions file: `{"index": …, "prediction": "raw model text"}`, optionally
/// with `"extraction"`: an answer already extracted by the predictions' authors (MathVista's
/// GPT extractions, BLINK's matched choices), which is then scored as is.
public struct Prediction: Sendable, Hashable {
    public var index: String
    public var text: String
    public var extraction: String?
    public var line: Int
}

/// Reads and checks a predictions JSONL file.
public enum PredictionsFile {
    public static func read(_ url: URL, extracted: Bool = false) throws -> [Prediction] {
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw DatasetError(file: path, "cannot read file")
        }
        let decoder = JSONDecoder()
        var result: [Prediction] = []
        var firstLine: [String: Int] = [:]
        for (line, text) in try TextLines.utf8Lines(data, file: path) {
            if text.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            guard let object = try? decoder.decode([String: JSONValue].self, from: Data(text.utf8)) else {
                throw DatasetError(file: path, line: line, "not a JSON object: \(text.prefix(60))")
            }
            guard let index = object["index"]?.text, !index.isEmpty else {
                throw DatasetError(file: path, line: line, "missing \"index\"")
            }
            let prediction = object["prediction"].flatMap { $0.isNull ? nil : $0.text }
            var extraction = object["extraction"].flatMap { $0.isNull ? nil : $0.text }
            guard let body = prediction ?? extraction else {
                throw DatasetError(file: path, line: line, "missing \"prediction\" (the model's raw text)")
            }
            if extracted, extraction == nil { extraction = body }
            if let first = firstLine[index] {
                throw DatasetError(file: path, line: line, "duplicate index '\(index)' (first on line \(first))")
            }
            firstLine[index] = line
            result.append(Prediction(index: index, text: body, extraction: extraction, line: line))
        }
        return result
    }
}
