import AssayCore
import Foundation

/// Questions with one exact integer answer (the generated `arithmetic` suite). The answer is the
/// boxed number when the response boxes one, otherwise the last number the response states
/// (after any `<think>` block), so "23 + 45 = 68.", "The answer is 68" and "\boxed{68}" all
/// read 68; a response whose only answer is a number word up to twenty ("sixty-eight" is not
/// read) counts too. A response without a number is unparsed. The score is exact equality.
public struct ExactNumberScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    static let words: [String: Int] = [
        "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
        "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
        "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    ]

    public func extract(_ response: String, item: Item) -> Extraction {
        let (text, method) = ReasoningText.finalAnswer(response)
        if let number = Self.lastNumber(in: text) { return .answer(number, method: method == "boxed" ? "boxed" : "last_number") }
        let tokens = text.lowercased().split { !$0.isLetter }
        if let word = tokens.last(where: { Self.words[String($0)] != nil }), let value = Self.words[String(word)] {
            return .answer(String(value), method: "number_word")
        }
        return .unparsed(reason: text.isEmpty ? "empty response" : "no number in the response")
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer, let value = Int(answer) else { return .binary(false) }
        return .binary(item.answers.contains { Int($0.trimmingCharacters(in: .whitespaces)) == value }, normalized: String(value))
    }

    /// The last integer written in the text (digits with optional thousands commas and a minus
    /// sign directly before them), as a canonical decimal string. A decimal like 68.0 reads 68;
    /// 68.5 is not an integer and is read as written, so it never equals an integer gold.
    static func lastNumber(in text: String) -> String? {
        let scalars = Array(text.unicodeScalars)
        var end = scalars.count
        while end > 0 {
            guard let last = scalars[..<end].lastIndex(where: { CharacterSet.decimalDigits.contains($0) && $0.isASCII }) else { return nil }
            var start = last
            while start > 0 {
                let previous = scalars[start - 1]
                if previous.isASCII, CharacterSet.decimalDigits.contains(previous) { start -= 1; continue }
                // A thousands comma: "1,234" (a digit on both sides, three digits after).
                if previous == ",", start >= 2, scalars[start - 2].isASCII, CharacterSet.decimalDigits.contains(scalars[start - 2]),
                   last - start + 1 >= 3 { start -= 1; continue }
                break
            }
            var digits = String(String.UnicodeScalarView(scalars[start...last])).replacingOccurrences(of: ",", with: "")
            // A fractional part: "68.0" → 68, "68.5" stays a non-integer.
            if start >= 2, scalars[start - 1] == ".", scalars[start - 2].isASCII, CharacterSet.decimalDigits.contains(scalars[start - 2]) {
                end = start - 1
                if digits.allSatisfy({ $0 == "0" }) { continue }
                var intStart = start - 2
                while intStart > 0, scalars[intStart - 1].isASCII, CharacterSet.decimalDigits.contains(scalars[intStart - 1]) { intStart -= 1 }
                return String(String.UnicodeScalarView(scalars[intStart...last]))
            }
            let negative = start > 0 && (scalars[start - 1] == "-" || scalars[start - 1] == "−")
                && (start < 2 || !(scalars[start - 2].isASCII && CharacterSet.alphanumerics.contains(scalars[start - 2])))
            while digits.count > 1, digits.hasPrefix("0") { digits.removeFirst() }
            return (negative && digits != "0" ? "-" : "") + digits
        }
        return nil
    }
}
