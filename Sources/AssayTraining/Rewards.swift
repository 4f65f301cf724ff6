import AssayCore
import AssaySuites
import Foundation

/// One response to reward, as EasyR1's reward interface passes it: the decoded response, its
/// length in tokens and the data row's answer.
public struct RewardInput: Sendable, Hashable, Codable {
    public var response: String
    public var responseLength: Int
    public var groundTruth: String

    public init(response: String, responseLength: Int = 0, groundTruth: String) {
        self.response = response
        self.responseLength = responseLength
        self.groundTruth = groundTruth
    }
}

/// A reward: the `overall` value the policy is trained on and its named parts (logged).
public struct RewardScore: Sendable, Hashable, Codable {
    public var overall: Double
    public var components: [String: Double]

    public init(overall: Double, components: [String: Double] = [:]) {
        self.overall = overall
        self.components = components
    }
}

/// A reward function over a batch of responses (EasyR1's "batch" reward type).
public protocol RewardFunction: Sendable {
    /// The name logged with its scores (`REWARD_NAME` in the exported Python file).
    var name: String { get }
    func score(_ inputs: [RewardInput]) -> [RewardScore]
}

/// The LLaVA-Critic-R1 reward: accuracy (the boxed label names the preferred response) weighted
/// 0.9 and format (`<think>…</think>…\boxed{…}`) weighted 0.1, as EasyR1's `math.py`/critic
/// reward computes it:
/// 1. whitespace around every `<`, `>` and `/` is removed (`re.sub(r"\s*(<|>|/)\s*", r"\1", r)`);
/// 2. format is 1 when the whole response matches `<think>.*</think>.*\\boxed\{.*\}.*` (dot
///    matching newlines), else 0;
/// 3. the prediction is the content of the last `\boxed{` up to its balanced closing brace,
///    stripped (`"None"` when there is none);
/// 4. accuracy is 1 when `CriticLabel` reads the ground truth's position (1 or 2) from it.
///    Labels are matched explicitly instead of through a math-answer grader, so "Response 2",
///    `\text{2}` and "two" count and "12" does not.
///
/// The Python file `EasyR1Export` writes computes the same numbers; a test holds the two equal
/// over thousands of responses.
public struct CriticPreferenceReward: RewardFunction {
    public let name = "critic_pref"
    /// Weight of the format term (the study: 0.1).
    public var formatWeight: Double

    public init(formatWeight: Double = 0.1) {
        self.formatWeight = formatWeight
    }

    public func score(_ inputs: [RewardInput]) -> [RewardScore] {
        inputs.map(score)
    }

    public func score(_ input: RewardInput) -> RewardScore {
        let response = Self.tightenTags(Array(input.response.unicodeScalars))
        let format: Double = Self.hasFormat(response) ? 1 : 0
        let prediction = Self.boxedContent(response)
        let gold = CriticLabel.parse(input.groundTruth)
        let accuracy: Double = gold != nil && prediction.flatMap { CriticLabel.parse(String(String.UnicodeScalarView($0))) } == gold ? 1 : 0
        return RewardScore(overall: (1 - formatWeight) * accuracy + formatWeight * format,
                           components: ["format": format, "accuracy": accuracy])
    }

    static let tagCharacters: Set<Unicode.Scalar> = ["<", ">", "/"]

    /// `re.sub(r"\s*(<|>|/)\s*", r"\1", text)`: a whitespace run before a tag character and
    /// the run after it disappear; other whitespace stays.
    static func tightenTags(_ s: [Unicode.Scalar]) -> [Unicode.Scalar] {
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
    static func hasFormat(_ s: [Unicode.Scalar]) -> Bool {
        guard s.starts(with: think), let close = CodePoints.find(thinkEnd, in: s, from: think.count),
              let box = CodePoints.find(boxed, in: s, from: close + thinkEnd.count) else { return false }
        return CodePoints.find(["}"], in: s, from: box + boxed.count) != nil
    }

    /// The content of the last `\boxed{` up to the brace that closes it, stripped; `nil` when
    /// there is no box or it never closes (Python: `"None"`).
    static func boxedContent(_ s: [Unicode.Scalar]) -> [Unicode.Scalar]? {
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

/// Any suite's own scorer as a reward: a response to an item of the suite is rewarded 1 when the
/// suite's official extraction and scoring count it correct (its item score, for non-binary
/// metrics), so GRPO trains on exactly the metric the evaluation reports.
public struct SuiteReward: Sendable {
    public let suite: Suite

    public init(suite: Suite) {
        self.suite = suite
    }

    public func score(response: String, item: Item) -> RewardScore {
        let extraction = suite.extract(response, item: item)
        let value = suite.score(extraction, item: item).value
        return RewardScore(overall: value, components: ["accuracy": value, "parsed": extraction.isUnparsed ? 0 : 1])
    }
}
