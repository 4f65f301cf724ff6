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

    /// `1`/`2` alone after removing LaTeX text wrappers, a leading "Response"/"Answer" word and
    /// punctuation.
    static func position(in boxed: String) -> Int? {
        var s = boxed.lowercased()
        for wrapper in ["\\text{", "\\textbf{", "\\mathrm{", "\\mathbf{"] {
            s = s.replacingOccurrences(of: wrapper, with: "")
        }
        s = s.replacingOccurrences(of: "}", with: "")
        s = s.trimmingCharacters(in: CharacterSet.alphanumerics.inverted)
        for word in ["response", "answer", "output", "option"] where s.hasPrefix(word) {
            s = String(s.dropFirst(word.count)).trimmingCharacters(in: CharacterSet.alphanumerics.inverted)
        }
        switch s {
        case "1", "one", "first": return 1
        case "2", "two", "second": return 2
        default: return nil
        }
    }

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
