import Foundation

/// Handling of reasoning-model output: `<think>…</think>` blocks and `\boxed{…}` final answers.
public enum ReasoningText {
    /// Removes every `<think>…</think>` block. When the text holds a `</think>` without its
    /// opening tag (the chat template opened the block in the prompt), everything up to the last
    /// `</think>` is reasoning. An opening tag that is never closed means the reasoning did not
    /// finish: nothing after it is an answer, so it is dropped.
    public static func stripThink(_ text: String) -> String {
        var result = text
        if let close = result.range(of: "</think>", options: .backwards) {
            let before = result[..<close.lowerBound]
            if before.range(of: "<think>") == nil {
                result = String(result[close.upperBound...])
            }
        }
        while let open = result.range(of: "<think>") {
            if let close = result.range(of: "</think>", range: open.upperBound..<result.endIndex) {
                result.removeSubrange(open.lowerBound..<close.upperBound)
            } else {
                result.removeSubrange(open.lowerBound..<result.endIndex)
            }
        }
        return result.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The content of the last `\boxed{…}` (or `\fbox{…}`), with balanced braces, or `nil`.
    public static func lastBoxed(_ text: String) -> String? {
        let scalars = Array(text.unicodeScalars)
        var searchEnd = scalars.count
        while true {
            guard let start = lastIndex(ofAny: ["\\boxed", "\\fbox"], in: scalars, before: searchEnd) else { return nil }
            var index = start.index + start.length
            while index < scalars.count, scalars[index] == " " { index += 1 }
            if index < scalars.count, scalars[index] == "{" {
                var depth = 0
                var contentStart = index + 1
                var cursor = index
                while cursor < scalars.count {
                    let scalar = scalars[cursor]
                    if scalar == "{" {
                        depth += 1
                        if depth == 1 { contentStart = cursor + 1 }
                    } else if scalar == "}" {
                        depth -= 1
                        if depth == 0 {
                            var view = String.UnicodeScalarView()
                            view.append(contentsOf: scalars[contentStart..<cursor])
                            return String(view).trimmingCharacters(in: .whitespacesAndNewlines)
                        }
                    }
                    cursor += 1
                }
                // An unclosed box at the end (truncated output) is not an answer; look earlier.
            }
            searchEnd = start.index
            if searchEnd == 0 { return nil }
        }
    }

    /// The text a rule should read: reasoning stripped, and the last boxed answer when present.
    /// `method` says which of the two it is (`boxed` or `text`).
    public static func finalAnswer(_ text: String) -> (text: String, method: String) {
        let stripped = stripThink(text)
        if let boxed = lastBoxed(stripped) {
            return (unwrapText(boxed), "boxed")
        }
        return (stripped, "text")
    }

    /// `\text{B}` → `B`, used inside boxed answers.
    static func unwrapText(_ text: String) -> String {
        for command in ["\\text{", "\\textbf{", "\\mathrm{"] where text.hasPrefix(command) && text.hasSuffix("}") {
            return String(text.dropFirst(command.count).dropLast()).trimmingCharacters(in: .whitespaces)
        }
        return text
    }

    private static func lastIndex(
        ofAny needles: [String], in scalars: [Unicode.Scalar], before end: Int
    ) -> (index: Int, length: Int)? {
        var best: (Int, Int)?
        for needle in needles {
            let pattern = Array(needle.unicodeScalars)
            guard pattern.count <= end else { continue }
            var i = end - pattern.count
            while i >= 0 {
                if scalars[i..<(i + pattern.count)].elementsEqual(pattern) {
                    if best == nil || i > best!.0 { best = (i, pattern.count) }
                    break
                }
                i -= 1
            }
        }
        return best
    }
}
