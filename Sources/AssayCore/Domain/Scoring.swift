import Foundation

/// The answer a rule (or a judge) found in a response, or why none was found.
/// There is no third outcome: an unparsed answer is never replaced by a guess.
public enum Extraction: Codable, Sendable, Hashable {
    /// `method` names the rule that fired (`letter`, `boxed`, `option_text`, `imported`, …).
    case answer(String, method: String)
    case unparsed(reason: String)

    public var answer: String? {
        if case .answer(let value, _) = self { return value }
        return nil
    }

    public var method: String {
        switch self {
        case .answer(_, let method): return method
        case .unparsed: return "unparsed"
        }
    }

    public var isUnparsed: Bool {
        if case .unparsed = self { return true }
        return false
    }

    private enum CodingKeys: String, CodingKey { case answer, method, reason }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let answer = try container.decodeIfPresent(String.self, forKey: .answer) {
            self = .answer(answer, method: try container.decodeIfPresent(String.self, forKey: .method) ?? "rule")
        } else {
            self = .unparsed(reason: try container.decodeIfPresent(String.self, forKey: .reason) ?? "")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .answer(let answer, let method):
            try container.encode(answer, forKey: .answer)
            try container.encode(method, forKey: .method)
        case .unparsed(let reason):
            try container.encode(reason, forKey: .reason)
        }
    }
}

/// The score of one response to one item: `value` in 0…1; `correct` for binary metrics.
public struct ItemScore: Codable, Sendable, Hashable {
    public var value: Double
    /// Set for binary scores (accuracy); McNemar's test uses it.
    public var correct: Bool?
    /// The normalised prediction the matcher compared, when it differs from the extraction.
    public var normalized: String?

    public init(value: Double, correct: Bool? = nil, normalized: String? = nil) {
        self.value = value
        self.correct = correct
        self.normalized = normalized
    }

    public static func binary(_ correct: Bool, normalized: String? = nil) -> ItemScore {
        ItemScore(value: correct ? 1 : 0, correct: correct, normalized: normalized)
    }
}

/// An item together with how its response was extracted and scored.
public struct ScoredItem: Sendable, Hashable {
    public var item: Item
    public var extraction: Extraction
    public var score: ItemScore

    public init(item: Item, extraction: Extraction, score: ItemScore) {
        self.item = item
        self.extraction = extraction
        self.score = score
    }
}

/// A suite's result for one run.
public struct SuiteMetrics: Codable, Sendable, Hashable {
    /// The headline metric in percent.
    public var score: Double
    /// Items scored (with a response that is not an error).
    public var n: Int
    /// Scored items whose answer could not be extracted (they score 0).
    public var unparsed: Int
    /// Items without a usable response (no response, or a backend error).
    public var missing: Int
    /// Every metric of the suite by name (percent unless the name says otherwise).
    public var metrics: [String: Double]

    public init(score: Double, n: Int, unparsed: Int, missing: Int = 0, metrics: [String: Double] = [:]) {
        self.score = score
        self.n = n
        self.unparsed = unparsed
        self.missing = missing
        self.metrics = metrics
    }
}
