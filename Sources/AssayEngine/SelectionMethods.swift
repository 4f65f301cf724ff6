import AssayCore
import Foundation

/// How one answer is picked from the first n of an item's N samples (test-time scaling).
public enum SelectionMethod: String, CaseIterable, Sendable, Codable {
    /// Sample 0: what a single draw gives (the baseline of every curve).
    case first
    /// The most frequent extracted answer (the suite's own extraction).
    case majority
    /// A correct candidate whenever one of the first n is correct (pass@n): an upper bound no
    /// selector without the gold answer can pass.
    case oracle
    /// A knockout tournament judged by a critic model, each match asked in both orders.
    case selfCritic = "self-critic"
}

/// One candidate of an item: a usable (not failed) stored sample with its extraction and score.
public struct SelectionCandidate: Sendable, Hashable {
    public var sample: Int
    public var extraction: Extraction
    public var score: ItemScore

    public init(sample: Int, extraction: Extraction, score: ItemScore) {
        self.sample = sample
        self.extraction = extraction
        self.score = score
    }
}

/// A choice and the reason recorded with it (JSON in the store).
public struct SelectionChoice: Sendable, Hashable {
    public var sample: Int
    public var reason: [String: JSONValue]
}

/// The selection rules that need no model: first, majority and oracle. Pure functions of the
/// candidates, so each is tested against hand-computed values.
public enum SelectionRules {
    /// Sample 0 when it is usable; `nil` (an error for the item) when sample 0 failed.
    public static func first(_ candidates: [SelectionCandidate]) -> SelectionChoice? {
        guard let zero = candidates.first(where: { $0.sample == 0 }) else { return nil }
        return SelectionChoice(sample: zero.sample, reason: ["rule": .string("sample 0")])
    }

    /// The best-scoring candidate (the first such in draw order): for binary scores, a correct
    /// one whenever any is correct.
    public static func oracle(_ candidates: [SelectionCandidate]) -> SelectionChoice? {
        guard let best = candidates.map(\.score.value).max(),
              let chosen = candidates.sorted(by: { $0.sample < $1.sample }).first(where: { $0.score.value == best }) else { return nil }
        let correct = candidates.filter { $0.score.value == best && best > 0 }.map { JSONValue.number(Double($0.sample)) }
        return SelectionChoice(sample: chosen.sample, reason: [
            "rule": .string(best > 0 ? "best score among the first n" : "no candidate scores above 0: sample in draw order"),
            "best_samples": .array(correct), "upper_bound": .bool(true),
        ])
    }

    /// The answer key majority voting counts: the scorer's normalised prediction when it gives
    /// one, else the extracted answer, trimmed and lower-cased; `nil` for unparsed answers (they
    /// do not vote).
    public static func voteKey(_ candidate: SelectionCandidate) -> String? {
        guard let answer = candidate.extraction.answer else { return nil }
        return (candidate.score.normalized ?? answer).trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }

    /// The most frequent answer among the parsed candidates. Ties are broken by a seeded rule
    /// that does not depend on draw order: the tied answer whose SHA-256 of
    /// `"<seed>|<suite>|<item>|<answer>"` is smallest wins. The chosen candidate is the first (in
    /// draw order) that gave the winning answer. With no parsed answer at all, sample 0 is taken
    /// (it scores as unparsed), or the first usable candidate when sample 0 failed.
    public static func majority(_ candidates: [SelectionCandidate], seed: UInt64, suite: String, item: String) -> SelectionChoice? {
        let ordered = candidates.sorted { $0.sample < $1.sample }
        guard let fallback = ordered.first else { return nil }
        var counts: [String: Int] = [:]
        for candidate in ordered {
            if let key = voteKey(candidate) { counts[key, default: 0] += 1 }
        }
        guard let top = counts.values.max() else {
            return SelectionChoice(sample: fallback.sample, reason: ["rule": .string("no parsed answer: first usable sample")])
        }
        let tied = counts.filter { $0.value == top }.map(\.key)
        let winner = tied.min { SHA256.hex("\(seed)|\(suite)|\(item)|\($0)") < SHA256.hex("\(seed)|\(suite)|\(item)|\($1)") } ?? tied[0]
        // invariant: the winner is the key of at least one candidate.
        let chosen = ordered.first { voteKey($0) == winner } ?? fallback
        var votes: [String: JSONValue] = [:]
        for (key, count) in counts { votes[key] = .number(Double(count)) }
        return SelectionChoice(sample: chosen.sample, reason: [
            "rule": .string(tied.count > 1 ? "tie among \(tied.count) answers broken by seeded hash" : "most frequent answer"),
            "answer": .string(winner), "votes": .object(votes),
        ])
    }

    // MARK: - Tournament pieces

    /// The seeded bracket of a tournament over the usable samples below n. Samples are taken in
    /// blocks that double: [0], [1], [2, 4), [4, 8), [8, 16), …; each block is shuffled by a
    /// permutation seeded from `"<seed>|<suite>|<item>|<block start>"`, and the blocks follow each
    /// other. Neighbours meet round by round (the last of an odd number waits a round), so the
    /// tournament over the first 2ᵏ samples is exactly the first part of every larger one: a
    /// curve n = 1, 2, 4, … N costs the N − 1 matches of the largest tournament, and each point's
    /// winner is a finalist of the next.
    public static func bracket(_ samples: [Int], seed: UInt64, suite: String, item: String, n: Int) -> [Int] {
        let usable = Set(samples.filter { $0 < n })
        var order: [Int] = []
        var lo = 0
        while lo < n {
            let hi = lo == 0 ? 1 : 2 * lo
            var block = Array(lo..<hi)
            let digest = SHA256.hex("bracket|\(seed)|\(suite)|\(item)|\(lo)")
            var g = SeededGenerator(seed: UInt64(digest.prefix(16), radix: 16) ?? seed)
            if block.count > 1 {
                for i in stride(from: block.count - 1, to: 0, by: -1) { block.swapAt(i, g.nextIndex(below: i + 1)) }
            }
            order += block.filter { usable.contains($0) }
            lo = hi
        }
        return order
    }

    /// How a match between samples `a` and `b` is decided from the critic's two verdicts:
    /// `aShownFirst` is its verdict (1 or 2, `nil` when unparsed) with `a` shown as response 1,
    /// `bShownFirst` with `b` shown as response 1.
    /// - Both orders pick the same candidate: it wins (`agree`).
    /// - Only one order names a winner: that one decides (`one_order`).
    /// - The orders contradict each other (the critic followed the position, not the content) or
    ///   neither names a winner: the earlier draw (lower sample index) wins (`disagree`,
    ///   `unparsed`). Draws are independent, so this is a fixed, unbiased default, and a critic
    ///   that never decides leaves sample 0: self-critic then equals `first`.
    public static func decide(a: Int, b: Int, aShownFirst: Int?, bShownFirst: Int?) -> (winner: Int, rule: String) {
        let pickA: Int? = aShownFirst.map { $0 == 1 ? a : b }
        let pickB: Int? = bShownFirst.map { $0 == 1 ? b : a }
        switch (pickA, pickB) {
        case let (x?, y?) where x == y: return (x, "agree")
        case let (x?, nil): return (x, "one_order")
        case let (nil, y?): return (y, "one_order")
        case (_?, _?): return (min(a, b), "disagree")
        case (nil, nil): return (min(a, b), "unparsed")
        }
    }
}
