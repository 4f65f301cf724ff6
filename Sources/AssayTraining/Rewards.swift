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
        let verdict = CriticRewardRule.read(input.response)
        let format: Double = verdict.format ? 1 : 0
        let gold = CriticLabel.parse(input.groundTruth)
        let accuracy: Double = gold != nil && verdict.choice == gold ? 1 : 0
        return RewardScore(overall: (1 - formatWeight) * accuracy + formatWeight * format,
                           components: ["format": format, "accuracy": accuracy])
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
