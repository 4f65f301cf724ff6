import Foundation

/// The pairwise critic task of LLaVA-Critic-R1: the model sees a question (with its images), two
/// responses to it, thinks inside `<think></think>` and names the better response as `\boxed{1}`
/// or `\boxed{2}`. One prompt serves the three places that ask it: self-critic Best-of-N
/// (`assay select`), the critic data written for GRPO, and the critic reward.
public enum CriticPrompt {
    /// Version of the wording below; part of every critic call's cache key, so an edit asks again.
    public static let version = "critic-pairwise@1"

    /// EasyR1's `math.jinja` format prompt, which the released critic recipe appends to every
    /// question (`data.format_prompt`).
    public static let formatInstruction = """
        You FIRST think about the reasoning process as an internal monologue and then provide the final answer. \
        The reasoning process MUST BE enclosed within <think> </think> tags. The final answer MUST BE put in \\boxed{}.
        """

    /// The text of the critic's user turn (images, when the question has any, go before it).
    /// `question` is the prompt the responses answered, as the policy saw it.
    public static func text(question: String, first: String, second: String) -> String {
        """
        You are given a question and two responses to it. Decide which response answers the question better: \
        judge first whether each final answer is correct, then how well it is reasoned and stated.

        [Question]
        \(question.trimmingCharacters(in: .whitespacesAndNewlines))

        [Response 1]
        \(first.trimmingCharacters(in: .whitespacesAndNewlines))

        [Response 2]
        \(second.trimmingCharacters(in: .whitespacesAndNewlines))

        Which response is better? Answer 1 or 2. \(formatInstruction)
        """
    }
}

/// Which of the two shown responses a critic's reply prefers, read without guessing.
public enum CriticVerdict: Sendable, Hashable {
    /// `1` or `2`: the position (as shown) of the preferred response. `method` is `boxed` when the
    /// reply boxed it (the released format), `stated` when it only said "Response N is better".
    case prefers(Int, method: String)
    case unparsed(reason: String)

    public var position: Int? {
        if case .prefers(let position, _) = self { return position }
        return nil
    }

    /// Reads a reply. The last `\boxed{…}` outside the reasoning decides when there is one: its
    /// content must name exactly one of the positions (`1`, `2`, `Response 1`, `\text{2}`, …). A
    /// reply without a box may still state its choice in a final sentence ("Response 2 is
    /// better"); anything else (no choice, both, a tie) is unparsed.
    public static func read(_ reply: String) -> CriticVerdict {
        let visible = ReasoningText.stripThink(reply)
        if let boxed = ReasoningText.lastBoxed(visible) ?? ReasoningText.lastBoxed(reply) {
            if let position = position(in: boxed) { return .prefers(position, method: "boxed") }
            return .unparsed(reason: "boxed answer '\(boxed.prefix(40))' names neither response 1 nor 2")
        }
        if let position = statedChoice(visible) { return .prefers(position, method: "stated") }
        return .unparsed(reason: visible.isEmpty ? "no answer after the reasoning" : "no boxed choice of response 1 or 2")
    }

    /// `1`/`2` named by a boxed answer (`CriticLabel`).
    static func position(in boxed: String) -> Int? { CriticLabel.parse(boxed) }

    /// The last "Response N is better" / "the first response is better" statement (or the same
    /// with "answer"), when it names one position.
    static func statedChoice(_ text: String) -> Int? {
        let lower = text.lowercased()
        var found: (index: String.Index, position: Int)?
        for word in ["response", "answer"] {
            for position in [1, 2] {
                let ordinal = position == 1 ? "first" : "second"
                for phrase in ["\(word) \(position) is better", "\(word) \(position) is the better",
                               "\(ordinal) \(word) is better", "\(ordinal) \(word) is the better"] {
                    if let range = lower.range(of: phrase, options: .backwards),
                       found == nil || range.lowerBound > found!.index {
                        found = (range.lowerBound, position)
                    }
                }
            }
        }
        return found?.position
    }
}

/// Which position a critic's boxed answer names: `1`/`2` alone (or one/two/first/second) once
/// LaTeX text wrappers, a leading "Response"/"Answer"/"Output"/"Option" and surrounding
/// punctuation are removed. Defined on code points with ASCII case folding only, so that the
/// exported Python reward (`EasyR1Export`) computes exactly the same on every input.
public enum CriticLabel {
    static let wrappers = ["\\text{", "\\textbf{", "\\mathrm{", "\\mathbf{"].map { Array($0.unicodeScalars) }
    static let words = ["response", "answer", "output", "option"].map { Array($0.unicodeScalars) }
    static let labels: [String: Int] = ["1": 1, "one": 1, "first": 1, "2": 2, "two": 2, "second": 2]

    public static func parse(_ text: String) -> Int? {
        var s = CodePoints.asciiLowercased(Array(text.unicodeScalars))
        for wrapper in wrappers { s = CodePoints.replacing(wrapper, with: [], in: s) }
        s = CodePoints.replacing(["}"], with: [], in: s)
        s = CodePoints.stripNonAlphanumeric(s)
        for word in words where s.starts(with: word) {
            s = CodePoints.stripNonAlphanumeric(Array(s.dropFirst(word.count)))
        }
        return labels[String(String.UnicodeScalarView(s))]
    }
}

/// Text operations with Python `str` semantics (code points, `str.isspace`, ASCII-only case
/// folding), for rules that Python code must reproduce exactly.
public enum CodePoints {
    /// The characters Python's `str.isspace()` (and `\s` in a `str` pattern) accepts.
    public static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    public static func asciiLowercased(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        s.map { $0.value >= 65 && $0.value <= 90 ? Unicode.Scalar($0.value + 32) ?? $0 : $0 }
    }

    static func isASCIIAlphanumeric(_ c: Unicode.Scalar) -> Bool {
        (c.value >= 48 && c.value <= 57) || (c.value >= 97 && c.value <= 122)
    }

    /// Drops characters other than `0-9a-z` from both ends.
    public static func stripNonAlphanumeric(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard let first = s.firstIndex(where: isASCIIAlphanumeric), let last = s.lastIndex(where: isASCIIAlphanumeric) else { return [] }
        return Array(s[first...last])
    }

    /// Python's `str.strip()`.
    public static func strip(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard let first = s.firstIndex(where: { !isPythonSpace($0) }), let last = s.lastIndex(where: { !isPythonSpace($0) }) else { return [] }
        return Array(s[first...last])
    }

    /// Python's `str.find(needle, start)`.
    public static func find(_ needle: [Unicode.Scalar], in s: [Unicode.Scalar], from start: Int = 0) -> Int? {
        guard !needle.isEmpty else { return start <= s.count ? start : nil }
        var i = max(0, start)
        while i + needle.count <= s.count {
            if s[i] == needle[0], s[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    /// Python's `str.rfind(needle)`.
    public static func rfind(_ needle: [Unicode.Scalar], in s: [Unicode.Scalar]) -> Int? {
        guard !needle.isEmpty, needle.count <= s.count else { return needle.isEmpty ? s.count : nil }
        var i = s.count - needle.count
        while i >= 0 {
            if s[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i -= 1
        }
        return nil
    }

    /// Python's `str.replace(old, new)`: non-overlapping, left to right.
    public static func replacing(_ old: [Unicode.Scalar], with new: [Unicode.Scalar], in s: [Unicode.Scalar]) -> [Unicode.Scalar] {
        guard !old.isEmpty else { return s }
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if i + old.count <= s.count, s[i..<(i + old.count)].elementsEqual(old) {
                out += new
                i += old.count
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }
}
