import Foundation

/// Text normalisation and distance primitives shared by the scorers.
public enum TextMatching {
    /// Lower-cases, removes punctuation and the articles a/an/the, and collapses whitespace
    /// (the SQuAD/VQA normalisation).
    public static func normalize(_ text: String) -> String {
        let lowered = text.lowercased()
        let noPunct = String(lowered.unicodeScalars.map { CharacterSet.punctuationCharacters.contains($0) || CharacterSet.symbols.contains($0) ? " " : Character($0) })
        let words = noPunct.split(whereSeparator: { $0.isWhitespace }).filter { !["a", "an", "the"].contains($0) }
        return words.joined(separator: " ")
    }

    /// Levenshtein edit distance over Unicode scalars (as Python's `Levenshtein.distance` on str).
    public static func levenshtein(_ a: String, _ b: String) -> Int {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        if x.isEmpty { return y.count }
        if y.isEmpty { return x.count }
        var previous = Array(0...y.count)
        var current = [Int](repeating: 0, count: y.count + 1)
        for i in 1...x.count {
            current[0] = i
            for j in 1...y.count {
                let cost = x[i - 1] == y[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[y.count]
    }

    /// Python's `str.split()`: runs of whitespace separate, no empty pieces.
    public static func words(_ text: String) -> [String] {
        text.split(whereSeparator: { $0.isWhitespace }).map(String.init)
    }
}
