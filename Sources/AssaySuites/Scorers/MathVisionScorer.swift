import AssayCore
import Foundation

/// MATH-Vision (Wang et al., 2024) with the rules of the official `evaluation/evaluate.py`:
/// the answer is taken from the response (a trailing ` A.`/` (A).` or leading `A\n`, a number after
/// the last "is ", the text after "the answer is"-style phrases, the last `\boxed{}`), normalised
/// by `find_math_answer`, and compared with both the gold letter and the gold option's text by
/// `is_equal` (`MathAnswer.isEquivalent`).
///
/// One deviation, on purpose: the official `is_equal` passes both strings to `latex2sympy` and
/// `eval`; here `LatexArithmetic` computes the same rounded values with a fixed grammar, so no
/// model text is ever evaluated as code (`Suites/mathvision/README.md` lists where the two differ
/// on the official outputs). `<think>` blocks are removed first, as for every reasoning suite.
public struct MathVisionScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    static let optionLabels = ["A", "B", "C", "D", "E"]

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        // VLMEvalKit's MathVision TSV keeps the subject in `category`; `level` is a column too.
        if let level = row.text("level") { item.metadata["level"] = .string(level) }
    }

    public func extract(_ response: String, item: Item) -> Extraction {
        let answer = Self.modelAnswer(ReasoningText.stripThink(response))
        if answer.isEmpty { return .unparsed(reason: "no answer left after MATH-V normalisation") }
        return .answer(answer, method: "mathv_rule")
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard var answer = extraction.answer else { return .binary(false) }
        // Imported answers are the raw `model_answer` of an official output file; our own
        // extraction is already normalised (normalising twice is harmless but not official).
        if extraction.method == "imported" { answer = answer.trimmingCharacters(in: .whitespaces) }
        return .binary(Self.isCorrect(answer, item: item), normalized: answer)
    }

    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        var groups: [String: (Double, Int)] = [:]
        for result in results {
            guard let level = result.item.meta("level") else { continue }
            let current = groups[level] ?? (0, 0)
            groups[level] = (current.0 + result.score.value, current.1 + 1)
        }
        return Dictionary(uniqueKeysWithValues: groups.map { ("level/\($0.key)", $0.value.0 / Double($0.value.1) * 100) })
    }

    /// `is_equal(gt_answer, model_answer) or is_equal(gt_answer_value, model_answer)`, where the
    /// value is the text of the gold option (empty for free-form questions).
    static func isCorrect(_ answer: String, item: Item) -> Bool {
        let gold = item.answer
        var goldValue = ""
        if !item.options.isEmpty, let index = optionLabels.firstIndex(of: gold.uppercased()), index < item.options.count {
            goldValue = item.options[index].text
        }
        return MathAnswer.isEquivalent(gold, answer) || MathAnswer.isEquivalent(goldValue, answer)
    }

    /// The answer-finding part of `evaluate()` (the `regen_answer=True` path), then
    /// `find_math_answer` and the letter clean-up.
    static func modelAnswer(_ response: String) -> String {
        var answer = response.trimmingCharacters(in: .whitespacesAndNewlines)
        for c in optionLabels {
            if answer.hasSuffix(" \(c).") || answer.hasSuffix(" (\(c)).") || answer.hasPrefix("\(c)\n")
                || answer.hasPrefix("(\(c))\n") || answer.hasPrefix("(\(c)) \(c)\n") {
                answer = c
            }
        }
        let afterIs = rstrip(MathAnswer.lastComponent(answer, "is "), ".")
        if PythonNumber.parseFloat(afterIs) != nil { answer = afterIs }
        if !answer.contains("oxed{") {
            for flag in ["the final answer is", "the answer is", "the correct answer is", "the answer should be"] {
                for variant in [flag, flag.replacingOccurrences(of: "the", with: "The")] {
                    let raw = answer
                    answer = MathAnswer.lastComponent(answer, variant).trimmingCharacters(in: .whitespacesAndNewlines)
                    if raw.contains(variant) {
                        answer = answer.components(separatedBy: "\n")[0].components(separatedBy: ". ")[0]
                    }
                }
            }
        } else if answer.components(separatedBy: "oxed{").count > 2 {
            answer = "\\boxed{" + MathAnswer.lastComponent(answer, "oxed{")
        }
        answer = MathAnswer.normalize(answer)
        for letter in ["a", "b", "c", "d", "e"] {
            answer = answer.replacingOccurrences(of: "(\(letter))", with: letter)
        }
        for letter in ["a", "b", "c", "d", "e"] {
            answer = answer.replacingOccurrences(of: "{\(letter)}", with: letter)
        }
        answer = rstrip(answer, ".")
        while answer.hasPrefix(":") { answer.removeFirst() }
        return answer.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Python's `str.rstrip(chars)` for one character.
    static func rstrip(_ s: String, _ c: Character) -> String {
        var result = Substring(s)
        while result.last == c { result.removeLast() }
        return String(result)
    }
}
