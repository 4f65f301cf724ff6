import Foundation

/// The answer of a free-text suite (OCR, document and chart VQA): the response itself, as the
/// official scorers of those benchmarks take it, after the reasoning-output rules every suite
/// applies (`<think>` blocks removed, a final `\boxed{}` preferred). Nothing else is cut away,
/// because the official matchers (substring, ANLS, relaxed accuracy) compare the whole prediction.
public enum FreeTextAnswer {
    /// `preferBoxed: false` keeps a `\boxed{}` as part of the text, for transcription tasks where
    /// the box is content (OCRBench's handwritten formulas include `\boxed { 3 }`); substring
    /// rules still find an answer the model boxed.
    public static func extract(_ response: String, preferBoxed: Bool = true) -> Extraction {
        let (text, source) = preferBoxed ? ReasoningText.finalAnswer(response) : (ReasoningText.stripThink(response), "text")
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty {
            return .unparsed(reason: response.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
                ? "empty response" : "no answer after the reasoning")
        }
        return .answer(trimmed, method: source == "boxed" ? "boxed_text" : "text")
    }

    /// A short answer without its dressing: surrounding whitespace, markdown emphasis, quotes and
    /// backticks, and a final period (`**Joint-CNN**.` → `Joint-CNN`).
    public static func clean(_ text: String) -> String {
        var result = Substring(text.trimmingCharacters(in: .whitespacesAndNewlines))
        let wrappers: Set<Character> = ["*", "\"", "'", "`"]
        while let first = result.first, wrappers.contains(first) { result.removeFirst() }
        while let last = result.last, wrappers.contains(last) || last == "." { result.removeLast() }
        return result.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
