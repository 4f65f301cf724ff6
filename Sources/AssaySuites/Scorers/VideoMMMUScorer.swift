import AssayCore
import Foundation

/// Video-MMMU (Hu et al., 2025): 900 questions on 300 lecture videos in three tracks (Perception,
/// Comprehension, Adaptation), asked over frames sampled from the video; Adaptation questions add
/// the question's own image after the frames.
///
/// Prompts and scoring follow VLMEvalKit's `videommmu.py`, the port of the official lmms-eval
/// task: the text after the last "Answer:" is parsed with Video-MMMU's variant of the MMMU rules
/// (`A.`/`A:` before `(A)` before `A `, option text for long answers, last mention wins) for
/// multiple choice, and with MMMU's `parse_open_response` (with Video-MMMU's longer list of
/// indicator phrases) and `eval_open` for open questions. Where the official parser returns
/// "No Answere Found", Assay records `unparsed` (scored wrong, counted). Accuracy is the mean over
/// all questions; the three tracks (the item category) are reported too.
public struct VideoMMMUScorer: SuiteScorer, VideoFrameSource {
    public let version = "1"
    public let videoColumn = "video"
    public init() {}

    static let prePrompt = "You should watch and learn the video content. Then apply what you learned to "
    static let perceptionPrompt = "\nPlease ignore the Quiz question in last frame of the video."
    static let mcqPrompt = "answer the following multi-choice question. The image for this question is at the end of the video.\n"
    static let openPrompt = "answer the following open-ended question. The image for this question is at the end of the video.\n"

    /// `process_results` parses only `multiple-choice` questions as choices; every other type is
    /// read as an open answer.
    static func isMultipleChoice(_ item: Item) -> Bool {
        item.meta("question_type") == "multiple-choice"
    }

    /// The question's image is a path in VLMEvalKit's TSV (`images/<name>`), not base64: it is
    /// read as an `image_path` so the builder loads the file next to the dataset.
    public func adapt(_ file: DatasetFile) throws -> DatasetFile {
        guard file.columns.contains("image") else { return file }
        var adapted = file
        adapted.rows = file.rows.map { row in
            var row = row
            if let path = row.text("image") { row.values["image_path"] = .string(path) }
            row.values["image"] = nil
            return row
        }
        adapted.columns = file.columns.filter { $0 != "image" } + (file.columns.contains("image_path") ? [] : ["image_path"])
        return adapted
    }

    public func prepare(_ item: inout Item, row: DatasetRow) throws {
        if item.options.isEmpty, let raw = row.text("options") {
            guard let options = ListLiteral.parse(raw) else {
                throw DatasetError(file: row.file, line: row.line, "column 'options' is not a JSON list: \(raw.prefix(60))")
            }
            item.options = options.enumerated().map {
                AnswerOption(label: String(UnicodeScalar(UInt8(65 + $0.offset % 26))), text: $0.element)
            }
        }
    }

    /// `parse_options`: the options as `A. text` lines, unless they already start that way.
    static func parsedOptions(_ item: Item) -> String {
        let texts = item.options.map(\.text)
        if zip(texts, item.optionLabels).allSatisfy({ $0.hasPrefix("\($1).") }) { return texts.joined(separator: "\n") }
        return item.options.map { "\($0.label). \($0.text)" }.joined(separator: "\n")
    }

    public func templateVariables(for item: Item) -> [String: String] {
        var prompt: String
        if item.category == "Adaptation" {
            prompt = Self.prePrompt
            var question = item.question
            if Self.isMultipleChoice(item) {
                prompt += Self.mcqPrompt
                question += "\n" + Self.parsedOptions(item)
            } else {
                prompt += Self.openPrompt
            }
            prompt += question
        } else {
            prompt = item.question + "\n" + Self.parsedOptions(item) + Self.perceptionPrompt
        }
        return ["videommmu_prompt": prompt]
    }

    // MARK: Extraction

    public func extract(_ response: String, item: Item) -> Extraction {
        let stripped = ReasoningText.stripThink(response)
        let prediction = MathAnswer.lastComponent(stripped, "Answer:").trimmingCharacters(in: .whitespacesAndNewlines)
        if prediction.isEmpty { return .unparsed(reason: "empty response") }
        if Self.isMultipleChoice(item) {
            let index2ans = Dictionary(item.options.map { ($0.label, $0.text) }, uniquingKeysWith: { a, _ in a })
            guard let choice = Self.parseMultiChoice(prediction, allChoices: item.optionLabels, index2ans: index2ans) else {
                return .unparsed(reason: "No Answere Found (official parser)")
            }
            return .answer(choice, method: "videommmu_choice")
        }
        return .answer(MMMUScorer.encode(Self.parseOpen(prediction)), method: "videommmu_open")
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        if Self.isMultipleChoice(item) {
            var choice = answer
            if extraction.method == "imported" {
                let index2ans = Dictionary(item.options.map { ($0.label, $0.text) }, uniquingKeysWith: { a, _ in a })
                choice = Self.parseMultiChoice(answer, allChoices: item.optionLabels, index2ans: index2ans) ?? ""
            }
            return .binary(item.answers.contains(choice), normalized: choice)
        }
        let predictions = extraction.method == "videommmu_open" ? MMMUScorer.decode(answer) : Self.parseOpen(answer)
        return .binary(MMMUScorer.evalOpen(gold: item.answers, predictions: predictions))
    }

    // MARK: - parse_multi_choice_response (Video-MMMU variant)

    static func parseMultiChoice(_ input: String, allChoices: [String], index2ans: [String: String]) -> String? {
        var response = input
        for char in [",", ".", "!", "?", ";", ":", "'"] {
            response = MMMUScorer.pythonStrip(response, Character(char))
        }
        response = " " + response + " "
        var candidates: [String] = []
        var withPeriod = false, withColon = false, withBracket = false
        var byIndex = true
        for choice in allChoices where response.contains("\(choice).") {
            candidates.append(choice)
            withPeriod = true
        }
        for choice in allChoices where response.contains("\(choice):") {
            candidates.append(choice)
            withColon = true
        }
        if candidates.isEmpty {
            for choice in allChoices where response.contains("(\(choice))") {
                candidates.append(choice)
                withBracket = true
            }
        }
        if candidates.isEmpty {
            for choice in allChoices where response.contains("\(choice) ") { candidates.append(choice) }
        }
        let lowered = response.lowercased()
        if candidates.isEmpty, TextMatching.words(response).count > 5 {
            for choice in allChoices {
                guard let text = index2ans[choice], lowered.contains(text.lowercased()) else { continue }
                candidates.append(choice)
                byIndex = false
            }
        }
        guard !candidates.isEmpty else { return nil }
        if candidates.count == 1 { return candidates[0] }
        func lastOffset(_ needle: String, in haystack: String) -> Int {
            guard let range = haystack.range(of: needle, options: .backwards) else { return -1 }
            return haystack.unicodeScalars.distance(from: haystack.unicodeScalars.startIndex, to: range.lowerBound)
        }
        let offsets: [Int] = candidates.map { candidate in
            guard byIndex else { return lastOffset(index2ans[candidate]?.lowercased() ?? "", in: lowered) }
            if withPeriod { return lastOffset("\(candidate).", in: response) }
            if withColon { return lastOffset("\(candidate):", in: response) }
            if withBracket { return lastOffset("(\(candidate))", in: response) }
            return lastOffset(" \(candidate) ", in: response)
        }
        // np.argmax: the first of equal maxima.
        var best = 0
        for index in offsets.indices where offsets[index] > offsets[best] { best = index }
        return candidates[best]
    }

    // MARK: - parse_open_response (Video-MMMU's indicator list)

    static let indicators = [
        "could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ", "are ", "in total ", "total ",
        "identify ", "recognize ", "calculated as ", "counted as ", "measured as ", "observed as ", "concluded as ",
        "found to be ", "equals ", "determined to be ", "number of ", "value is ", "adds up to ", "have ", "has ",
    ]

    static func parseOpen(_ input: String) -> [MMMUScorer.Prediction] {
        let response = MMMUScorer.pythonStrip(input.trimmingCharacters(in: .whitespacesAndNewlines), ".").lowercased()
        let subResponses = subResponseSplit.split(response)
        var keyResponses: [String] = []
        var indicators = Self.indicators
        for (index, sub) in subResponses.enumerated() {
            if index == subResponses.count - 1 { indicators.append("=") }
            var shortest: String?
            for indicator in indicators where sub.contains(indicator) {
                let tail = MathAnswer.lastComponent(sub, indicator).trimmingCharacters(in: .whitespacesAndNewlines)
                if let current = shortest, !current.isEmpty {
                    if tail.count < current.count { shortest = tail }
                } else {
                    shortest = tail
                }
            }
            if let key = shortest, !key.isEmpty,
               ![":", ",", ".", "!", "?", ";", "'"].contains(key.trimmingCharacters(in: .whitespacesAndNewlines)) {
                keyResponses.append(key)
            }
        }
        if keyResponses.isEmpty { keyResponses = [response] }
        var predictions = keyResponses
        for response in keyResponses { predictions += MMMUScorer.extractNumbers(response) }
        var seen = Set<MMMUScorer.Prediction>()
        var result: [MMMUScorer.Prediction] = []
        for prediction in predictions.flatMap(MMMUScorer.normalize) where seen.insert(prediction).inserted {
            result.append(prediction)
        }
        return result
    }

    private static let subResponseSplit = Pattern(#"\.\s(?=[A-Z])|\n"#)
}
