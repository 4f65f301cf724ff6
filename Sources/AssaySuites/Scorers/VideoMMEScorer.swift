import AssayCore
import Foundation

/// Video-MME (Fu et al., 2024) without subtitles: four-option questions about a video, asked over
/// frames sampled uniformly from it (`VideoSampling`, 8 by default).
///
/// Extraction is the official `extract_characters_regex` of the Video-MME evaluation script
/// (also VLMEvalKit's): answer prefixes ("The best answer is", "Answer:", …) are removed and the
/// first capital A–D in what remains is the answer; none → `unparsed` (where VLMEvalKit would ask
/// a judge). Accuracy is reported overall, per duration (short, medium, long: the item category),
/// per task type (subcategory), and per domain and sub-category of the video.
public struct VideoMMEScorer: SuiteScorer, VideoFrameSource {
    public let version = "1"
    public let videoColumn = "video_path"
    public init() {}

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        // `candidates` is a Python list of "A. text" strings.
        if item.options.isEmpty, let candidates = try row.list("candidates") {
            item.options = candidates.enumerated().map { offset, candidate in
                let label = String(UnicodeScalar(UInt8(65 + offset % 26)))
                var text = candidate.trimmingCharacters(in: .whitespaces)
                if text.hasPrefix("\(label).") { text = String(text.dropFirst(2)).trimmingCharacters(in: .whitespaces) }
                return AnswerOption(label: label, text: text)
            }
            item.metadata["candidates_text"] = .string(candidates.joined(separator: "\n"))
        }
        if let duration = row.text("duration") { item.category = duration }
        if let task = row.text("task_type") { item.subcategory = task }
    }

    public func templateVariables(for item: Item) -> [String: String] {
        ["videomme_options": item.meta("candidates_text") ?? item.options.map { "\($0.label). \($0.text)" }.joined(separator: "\n")]
    }

    public func extract(_ response: String, item: Item) -> Extraction {
        let letter = Self.extractCharacters(ReasoningText.finalAnswer(response).text)
        if letter.isEmpty { return .unparsed(reason: "no capital A-D after removing answer prefixes") }
        return .answer(letter, method: "videomme_regex")
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        let letter = extraction.method == "imported" ? Self.extractCharacters(answer) : answer
        return .binary(letter == item.answer.trimmingCharacters(in: .whitespaces), normalized: letter)
    }

    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        var groups: [String: (Double, Int)] = [:]
        for result in results {
            for key in ["domain", "sub_category"] {
                guard let value = result.item.meta(key) else { continue }
                let name = "\(key)/\(value)"
                let current = groups[name] ?? (0, 0)
                groups[name] = (current.0 + result.score.value, current.1 + 1)
            }
        }
        return groups.mapValues { $0.0 / Double($0.1) * 100 }
    }

    /// The official prefixes, kept as written: two missing commas in the source join
    /// "The best option is" with "The correct option is", and "Best answer:" with "Best option:".
    static let answerPrefixes = [
        "The best answer is", "The correct answer is", "The answer is", "The answer",
        "The best option isThe correct option is", "Best answer:Best option:", "Answer:", "Option:",
    ]
    private static let letter = Pattern("[ABCD]")

    /// `extract_characters_regex`: the first A–D once the prefixes are removed, or "".
    static func extractCharacters(_ input: String) -> String {
        var s = input.trimmingCharacters(in: .whitespacesAndNewlines)
        for prefix in answerPrefixes { s = s.replacingOccurrences(of: prefix, with: "") }
        if TextMatching.words(s).count > 10, !letter.matches(s) { return "" }
        return letter.firstMatch(in: s) ?? ""
    }
}
