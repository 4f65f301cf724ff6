import Foundation

/// How the LLaVA-Critic-R1 release's reward reads a critic's reply, shared by the training reward
/// (`CriticPreferenceReward`) and the evaluation of critics on held-out pairs:
/// 1. whitespace around every `<`, `>` and `/` is removed (`re.sub(r"\s*(<|>|/)\s*", r"\1", r)`);
/// 2. format holds when the whole reply matches `<think>.*</think>.*\\boxed\{.*\}.*` (dot
///    matching newlines);
/// 3. the choice is what `CriticLabel` reads from the content of the last `\boxed{` up to its
///    balanced closing brace, stripped (none when there is no closed box).
public enum CriticRewardRule {
    public static func read(_ response: String) -> (choice: Int?, format: Bool) {
        let text = tightenTags(Array(response.unicodeScalars))
        let choice = boxedContent(text).flatMap { CriticLabel.parse(String(String.UnicodeScalarView($0))) }
        return (choice, hasFormat(text))
    }

    static let tagCharacters: Set<Unicode.Scalar> = ["<", ">", "/"]

    /// `re.sub(r"\s*(<|>|/)\s*", r"\1", text)`: a whitespace run before a tag character and
    /// the run after it disappear; other whitespace stays.
    public static func tightenTags(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if CodePoints.isPythonSpace(s[i]) {
                var j = i
                while j < s.count, CodePoints.isPythonSpace(s[j]) { j += 1 }
                if j < s.count, tagCharacters.contains(s[j]) {
                    i = j  // the tag is emitted below with the run after it dropped
                } else {
                    out += s[i..<j]
                    i = j
                    continue
                }
            }
            if tagCharacters.contains(s[i]) {
                out.append(s[i])
                i += 1
                while i < s.count, CodePoints.isPythonSpace(s[i]) { i += 1 }
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }

    static let think = Array("<think>".unicodeScalars), thinkEnd = Array("</think>".unicodeScalars)
    static let boxed = Array("\\boxed{".unicodeScalars)

    /// `re.fullmatch(r"<think>.*</think>.*\\boxed\{.*\}.*", text, re.DOTALL)`: the earliest
    /// occurrence of each part after the previous one decides whether any match exists.
    public static func hasFormat(_ s: [Unicode.Scalar]) -> Bool {
        guard s.starts(with: think), let close = CodePoints.find(thinkEnd, in: s, from: think.count),
              let box = CodePoints.find(boxed, in: s, from: close + thinkEnd.count) else { return false }
        return CodePoints.find(["}"], in: s, from: box + boxed.count) != nil
    }

    /// The content of the last `\boxed{` up to the brace that closes it, stripped; `nil` when
    /// there is no box or it never closes (Python: `"None"`).
    public static func boxedContent(_ s: [Unicode.Scalar]) -> [Unicode.Scalar]? {
        guard let start = CodePoints.rfind(boxed, in: s) else { return nil }
        var depth = 0
        var i = start + boxed.count
        while i < s.count {
            if s[i] == "{" { depth += 1 } else if s[i] == "}" { depth -= 1 }
            if depth == -1 { return CodePoints.strip(Array(s[(start + boxed.count)..<i])) }
            i += 1
        }
        return nil
    }
}
