import AssayCore
import Foundation

/// CharXiv reasoning (Wang et al., NeurIPS 2024 D&B), validation split: questions about charts
/// from arXiv papers with short text or number answers in four answer types (`inst_category`:
/// 1 text-in-chart, 2 text-in-general, 3 number-in-chart, 4 number-in-general).
///
/// The official protocol grades every response with GPT-4o (`src/evaluate.py`, one grading prompt
/// per answer type, score 0/1). This plugin is the deterministic rule scorer that stands in when
/// no judge is configured; its numbers are reported as rule-scored, apart from judged ones. The
/// rules follow the judge's instructions where a rule can:
///
/// - the answer is the text after the last "answer is"/"answer:" phrase, or the whole response
///   when it is one short line (after the `<think>`/`\boxed{}` rules); otherwise `unparsed`;
/// - number types: equal in value, whatever the notation (`1500`, `1.5e3`, `1,500`, `10^3`); the
///   last number of the answer is compared, or all of them when the gold lists several;
/// - text types: the same terms, ignoring case, spacing, TeX markup, Greek-letter spelling
///   (`α`/`alpha`), surrounding parentheses and the order of comma-separated terms.
///
/// Semantic equivalence ("moving up then down" for "increasing then decreasing"), which the judge
/// accepts for text-in-general answers, is beyond a rule: such answers score 0 here.
public struct CharXivScorer: SuiteScorer {
    public let version = "1"
    public init() {}

    /// `IDX2ANSTYPE` of the official `score_utils.py`.
    static let answerTypes = [1: "Text-in-Chart", 2: "Text-in-General", 3: "Number-in-Chart", 4: "Number-in-General"]
    /// `IDX2SRC` of the official `score_utils.py`.
    static let sources = [1: "GPT-Sourced", 2: "GPT-Inspired", 3: "Completely Human"]
    /// Longest one-line response taken as the answer itself.
    static let shortAnswerLimit = 200

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        guard let raw = item.meta("inst_category"), let type = Int(raw), let name = Self.answerTypes[type] else {
            throw DatasetError(file: row.file, line: row.line,
                               "item '\(item.id)': 'inst_category' must be 1, 2, 3 or 4, not '\(item.meta("inst_category") ?? "")'")
        }
        guard !item.answers.isEmpty else {
            throw DatasetError(file: row.file, line: row.line, "item '\(item.id)' has no gold answer")
        }
        if item.category == nil { item.category = name }
        if item.subcategory == nil, let source = item.meta("qa_source").flatMap({ Int($0) }).flatMap({ Self.sources[$0] }) {
            item.subcategory = source
        }
    }

    static func isNumeric(_ item: Item) -> Bool {
        let type = item.meta("inst_category").flatMap { Int($0) }
        return type == 3 || type == 4
    }

    // MARK: - Extraction

    private static let answerPhrase = Pattern(#"(?i:final answer|answer)\s*(?:(?i:is)\b|[:：])\s*(?:[:：]\s*)?(.+)"#)

    public func extract(_ response: String, item: Item) -> Extraction {
        let (text, source) = ReasoningText.finalAnswer(response)
        let prefix = source == "boxed" ? "boxed_" : ""
        if text.isEmpty { return .unparsed(reason: "empty response") }
        if let phrase = Self.answerPhrase.lastMatch(in: text, group: 1) {
            let answer = FreeTextAnswer.clean(phrase)
            if !answer.isEmpty { return .answer(answer, method: prefix + "answer_phrase") }
        }
        let cleaned = FreeTextAnswer.clean(text)
        if !cleaned.isEmpty, !cleaned.contains("\n"), cleaned.count <= Self.shortAnswerLimit {
            return .answer(cleaned, method: prefix + "short_answer")
        }
        return .unparsed(reason: "no short answer or answer phrase")
    }

    // MARK: - Matching

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        return .binary(item.answers.contains { Self.matches(answer, gold: $0, numeric: Self.isNumeric(item)) })
    }

    static func matches(_ answer: String, gold: String, numeric: Bool) -> Bool {
        if numeric {
            let goldNumbers = numbers(in: gold)
            if !goldNumbers.isEmpty {
                let predicted = numbers(in: answer)
                if goldNumbers.count == 1 {
                    guard let last = predicted.last else { return false }
                    return equal(last, goldNumbers[0])
                }
                guard predicted.count == goldNumbers.count else { return false }
                return zip(predicted.sorted(), goldNumbers.sorted()).allSatisfy { equal($0, $1) }
            }
        }
        let predictedTerms = terms(answer), goldTerms = terms(gold)
        if predictedTerms.joined(separator: ",") == goldTerms.joined(separator: ",") { return true }
        return predictedTerms.sorted() == goldTerms.sorted()
    }

    static func equal(_ a: Double, _ b: Double) -> Bool {
        abs(a - b) <= 1e-9 * max(1, abs(b))
    }

    private static let timesPower = Pattern(#"(\d+(?:\.\d+)?)\s*(?:\\times|\\cdot|×|x|\*)\s*10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?"#)
    private static let barePower = Pattern(#"(?<![\d.])10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?"#)
    private static let number = Pattern(#"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"#)

    /// The numbers written in `text`, in order: scientific forms (`1.5e3`, `1.5 × 10^3`, `10^{-2}`)
    /// and thousands separators (`40,000`) read as one value; a percent sign is ignored.
    static func numbers(in text: String) -> [Double] {
        var normalized = text.replacingOccurrences(of: "\u{2212}", with: "-")
        normalized = timesPower.replacing(in: normalized, with: "$1e$2")
        normalized = barePower.replacing(in: normalized, with: "1e$1")
        return number.findAll(in: normalized).compactMap {
            PythonNumber.parseFloat($0.replacingOccurrences(of: ",", with: ""))
        }
    }

    private static let greek: [Character: String] = [
        "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "ε": "epsilon", "ζ": "zeta", "η": "eta",
        "θ": "theta", "ι": "iota", "κ": "kappa", "λ": "lambda", "μ": "mu", "ν": "nu", "ξ": "xi",
        "π": "pi", "ρ": "rho", "σ": "sigma", "τ": "tau", "υ": "upsilon", "φ": "phi", "χ": "chi",
        "ψ": "psi", "ω": "omega",
    ]

    /// Comma-separated terms, each lower-cased, without TeX markup, spaces or wrapping
    /// parentheses, with Greek letters spelled out.
    static func terms(_ text: String) -> [String] {
        var spelled = ""
        for character in text.lowercased() {
            if let name = greek[character] { spelled += name } else { spelled.append(character) }
        }
        return spelled.split(separator: ",").map { term in
            var cleaned = String(term.filter { !$0.isWhitespace && !"$\\{}*`\"'".contains($0) })
            while cleaned.hasSuffix(".") { cleaned.removeLast() }
            while cleaned.count >= 2, cleaned.first == "(", cleaned.last == ")" {
                cleaned = String(cleaned.dropFirst().dropLast())
            }
            return cleaned
        }.filter { !$0.isEmpty }
    }
}
