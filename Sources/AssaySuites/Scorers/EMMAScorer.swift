import AssayCore
import Foundation

/// EMMA (Hao et al., 2025), EMMA-mini (400 questions, 100 each of math, physics, chemistry and
/// coding), with the rule path of the official `evaluation/evaluate.py`: `fast_extract_answer`
/// (a bare or `A:`/`A.` letter, a bare number, the last `\boxed{}` — its `\text{}` if any — or the
/// text after "answer is"-style phrases) and `is_equal` against the gold answer and the gold
/// option's text (equal ignoring case; a number written in words; equal values rounded to two
/// places). An empty extraction is `unparsed`.
///
/// Deviations: the numeric comparison uses `LatexArithmetic` instead of `latex2sympy` + sympy (no
/// model text is evaluated), and sympy's `simplify(a - b) == 0` for symbolic answers is not
/// reproduced, so an algebraically equal but differently written expression scores wrong.
public struct EMMAScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    static func isMultipleChoice(_ item: Item) -> Bool {
        let type = (item.meta("type") ?? "").lowercased()
        if type.isEmpty { return !item.options.isEmpty }
        return type.contains("mc") || type.contains("multiple") || type.contains("choice")
    }

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        // The official subject (Math, Physics, Chemistry, Coding) is the reported breakdown;
        // VLMEvalKit's TSV may call it `subject` and keep the fine category in `category`.
        if let subject = row.text("subject") {
            item.subcategory = item.category
            item.category = subject
        }
    }

    /// The official query (`data_utils.build_query` with `configs/gpt.yaml`, CoT strategy).
    public func templateVariables(for item: Item) -> [String: String] {
        let context = item.meta("context") ?? ""
        let instruction = "Please solve the problem step by step."
        let query: String
        if Self.isMultipleChoice(item) {
            let options = item.options.map { "\($0.label): \($0.text)\n" }.joined()
            query = "\(context)\n\(item.question)\n\(options)\nAnswer with the option's letter from the given choices and put the letter in one \"\\boxed{}\". " + instruction
        } else {
            query = "\(context)\n\(item.question)\nAnswer the question using a single word or phrase and put the answer in one \"\\boxed{}\". " + instruction
        }
        return ["emma_query": query]
    }

    public func extract(_ response: String, item: Item) -> Extraction {
        let answer = Self.fastExtractAnswer(ReasoningText.stripThink(response))
        if answer.isEmpty { return .unparsed(reason: "fast_extract_answer found nothing") }
        return .answer(answer, method: "emma_fast_extract")
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard var answer = extraction.answer else { return .binary(false) }
        if extraction.method == "imported" { answer = Self.fastExtractAnswer(answer).isEmpty ? answer : Self.fastExtractAnswer(answer) }
        let gold = item.answer
        var goldContent = gold
        if Self.isMultipleChoice(item), let option = item.options.first(where: { $0.label == gold.uppercased() }) {
            goldContent = option.text
        }
        return .binary(Self.isEqual(answer, gold) || Self.isEqual(answer, goldContent))
    }

    // MARK: - Official rules

    static func fastExtractAnswer(_ input: String) -> String {
        let response = input.trimmingCharacters(in: .whitespacesAndNewlines)
        for ch in ["A", "B", "C", "D", "E", "F", "G", "H"] {
            if response.uppercased() == ch || response.hasPrefix("\(ch):") || response.hasPrefix("\(ch).") { return ch }
        }
        if PythonNumber.parseFloat(response) != nil { return response }
        if response.contains("boxed{") {
            let boxes = fullBoxedContents(response)
            if let last = boxes.last {
                if let text = textContent.findAll(in: last).last { return text.trimmingCharacters(in: .whitespacesAndNewlines) }
                return last.trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        let lowered = response.lowercased()
        for flag in ["final answer is", "correct answer is", "answer should be", "answer is", "answer:"] where lowered.contains(flag) {
            let tail = MathAnswer.lastComponent(lowered, flag).trimmingCharacters(in: .whitespacesAndNewlines)
            return tail.components(separatedBy: "\n")[0].components(separatedBy: ".")[0]
        }
        return ""
    }

    private static let textContent = Pattern(#"\\text\{(.*?)\}"#)

    /// `extract_full_boxed_content`: the content of every `\boxed{…}` with balanced braces.
    static func fullBoxedContents(_ s: String) -> [String] {
        let chars = Array(s.unicodeScalars)
        let marker = Array("\\boxed{".unicodeScalars)
        var results: [String] = []
        var i = 0
        while i < chars.count {
            if i + marker.count <= chars.count, Array(chars[i..<(i + marker.count)]) == marker {
                let start = i + marker.count
                var depth = 0
                i = start
                while i < chars.count {
                    if chars[i] == "{" {
                        depth += 1
                    } else if chars[i] == "}" {
                        if depth > 0 {
                            depth -= 1
                        } else {
                            var view = String.UnicodeScalarView()
                            view.append(contentsOf: chars[start..<i])
                            results.append(String(view))
                            break
                        }
                    }
                    i += 1
                }
            }
            i += 1
        }
        return results
    }

    /// EMMA's `is_equal(md_ans, gt_ans)`.
    static func isEqual(_ prediction: String, _ gold: String) -> Bool {
        let md = prediction.lowercased(), gt = gold.lowercased()
        let mdTrimmed = md.trimmingCharacters(in: .whitespacesAndNewlines)
        let gtTrimmed = gt.trimmingCharacters(in: .whitespacesAndNewlines)
        if mdTrimmed == gtTrimmed { return true }
        if let number = WordNumber.value(md), String(number) == gtTrimmed { return true }
        guard let a = LatexArithmetic.evaluate(md), let b = LatexArithmetic.evaluate(gt) else { return false }
        return PythonNumber.round(a.double, digits: 2) == PythonNumber.round(b.double, digits: 2)
    }
}

/// English number words to integers, as `word2number.w2n.word_to_num` reads them for answers
/// ("twelve", "two hundred and five", "3"). `nil` when the text holds no number word.
enum WordNumber {
    static let units: [String: Int] = [
        "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
        "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
        "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
        "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    ]
    static let scales: [String: Int] = ["thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000]

    static func value(_ text: String) -> Int? {
        let cleaned = text.lowercased().replacingOccurrences(of: "-", with: " ").trimmingCharacters(in: .whitespacesAndNewlines)
        if let integer = Int(cleaned) { return integer }
        let words = cleaned.split(whereSeparator: { !$0.isLetter }).map(String.init)
        var total = 0, current = 0
        var sawNumber = false
        for word in words {
            if let value = units[word] {
                current += value
                sawNumber = true
            } else if word == "hundred" {
                current = max(current, 1) * 100
                sawNumber = true
            } else if let scale = scales[word] {
                total += max(current, 1) * scale
                current = 0
                sawNumber = true
            }
        }
        return sawNumber ? total + current : nil
    }
}
