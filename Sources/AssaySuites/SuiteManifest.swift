import AssayCore
import Foundation
import Yams

/// The contents of `Suites/<id>/suite.yaml`: everything about a suite that is data, not code.
public struct SuiteManifest: Codable, Sendable, Hashable {
    public var id: String
    public var title: String
    /// perception, reasoning, chart_doc, video, agent, reward, or a user's own group.
    public var group: String
    /// Bumped whenever the prompt, extraction, metric or data source changes meaningfully.
    public var version: Int
    public var split: String
    public var expectedItems: Int?
    public var source: DataSource?
    public var columns: Columns
    /// How a list-looking `answer` is read: `any_of` (a JSON/Python list means "any of these")
    /// or `literal` (the text is the answer, as MathVista's list answers are).
    public var answerFormat: AnswerFormat
    /// Keeps only rows whose column equals the value (MMMU_DEV_VAL holds dev and validation).
    public var filter: [String: String]
    public var prompt: PromptSpec
    /// The scorer plugin: `multiple_choice`, `yes_no`, or a suite-specific one (`mmmu`, …).
    public var scorer: String
    /// A human name for the headline metric (shown in reports).
    public var metric: String
    /// How the headline is averaged; `macro_mean` averages the per-`stratum` accuracies.
    public var headline: HeadlineStatistic
    /// The item field whose values are the strata of a macro mean: `category` or `subcategory`.
    public var stratum: String?
    /// Published numbers for well-known models, for the report and the suite README.
    public var reference: [ReferenceScore]
    /// A judge step for responses the rules cannot read (MathVista answer extraction, CharXiv
    /// grading); `nil` for rule-only suites.
    public var judge: JudgeSpec?
    /// Where the manifest was read from (not part of the YAML).
    public var directory: String?

    /// `judge:` in suite.yaml: which judge task runs where the rules fail, and its version.
    public struct JudgeSpec: Codable, Sendable, Hashable {
        /// `answer_extraction` (the judge reads the answer out of the response) or `grading`
        /// (the judge says whether the response matches the gold answer).
        public var task: String
        public var version: Int
    }

    public struct DataSource: Codable, Sendable, Hashable {
        /// `vlmevalkit_tsv`, `jsonl`, or `generated` (items drawn by Assay, like `sanity`).
        public var format: String
        /// VLMEvalKit's dataset name (the TSV's base name).
        public var name: String?
        public var url: String?
        public var md5: String?
        public var notes: String?
        /// For generated suites: how many items, from which seed.
        public var count: Int?
        public var seed: UInt64?
    }

    public struct Columns: Codable, Sendable, Hashable {
        /// Columns every row must have.
        public var required: [String]
        public init(required: [String]) { self.required = required }
    }

    public enum AnswerFormat: String, Codable, Sendable {
        case anyOf = "any_of"
        case literal
    }

    public struct PromptSpec: Codable, Sendable, Hashable {
        public var version: Int
        public var system: String?
        /// The user-turn text; see `PromptTemplate` for the syntax.
        public var template: String
        /// `before` (the Qwen-VL convention) or `after` the text.
        public var images: String?
    }

    public struct ReferenceScore: Codable, Sendable, Hashable {
        public var model: String
        public var score: Double
        public var source: String?
    }

    enum CodingKeys: String, CodingKey {
        case id, title, group, version, split, source, columns, filter, prompt, scorer, metric, headline, stratum, reference, judge
        case expectedItems = "expected_items"
        case answerFormat = "answer_format"
        case directory
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        title = try c.decodeIfPresent(String.self, forKey: .title) ?? id
        group = try c.decodeIfPresent(String.self, forKey: .group) ?? "custom"
        version = try c.decodeIfPresent(Int.self, forKey: .version) ?? 1
        split = try c.decodeIfPresent(String.self, forKey: .split) ?? "test"
        expectedItems = try c.decodeIfPresent(Int.self, forKey: .expectedItems)
        source = try c.decodeIfPresent(DataSource.self, forKey: .source)
        columns = try c.decodeIfPresent(Columns.self, forKey: .columns) ?? Columns(required: ["index", "answer"])
        answerFormat = try c.decodeIfPresent(AnswerFormat.self, forKey: .answerFormat) ?? .anyOf
        filter = try c.decodeIfPresent([String: String].self, forKey: .filter) ?? [:]
        prompt = try c.decode(PromptSpec.self, forKey: .prompt)
        scorer = try c.decode(String.self, forKey: .scorer)
        metric = try c.decodeIfPresent(String.self, forKey: .metric) ?? "accuracy"
        headline = try c.decodeIfPresent(HeadlineStatistic.self, forKey: .headline) ?? .mean
        stratum = try c.decodeIfPresent(String.self, forKey: .stratum)
        reference = try c.decodeIfPresent([ReferenceScore].self, forKey: .reference) ?? []
        judge = try c.decodeIfPresent(JudgeSpec.self, forKey: .judge)
        directory = try c.decodeIfPresent(String.self, forKey: .directory)
    }

    /// Reads and checks a manifest file.
    public static func load(from url: URL) throws -> SuiteManifest {
        guard let data = FileManager.default.contents(atPath: url.path),
              let text = String(data: data, encoding: .utf8) else {
            throw SuiteError.manifest(file: url.path, "cannot read the file as UTF-8")
        }
        var manifest: SuiteManifest
        do {
            manifest = try YAMLDecoder().decode(SuiteManifest.self, from: text)
        } catch let error as DecodingError {
            throw SuiteError.manifest(file: url.path, describe(error))
        } catch {
            throw SuiteError.manifest(file: url.path, "\(error)")
        }
        manifest.directory = url.deletingLastPathComponent().path
        try manifest.validate(file: url.path)
        return manifest
    }

    func validate(file: String) throws {
        guard id.range(of: #"^[a-z0-9][a-z0-9_\-]*$"#, options: .regularExpression) != nil else {
            throw SuiteError.manifest(file: file, "id '\(id)' must be lower-case letters, digits, '-' or '_'")
        }
        if headline == .macroMean, stratum == nil {
            throw SuiteError.manifest(file: file, "headline macro_mean needs a 'stratum' (category or subcategory)")
        }
        if let stratum, !["category", "subcategory"].contains(stratum) {
            throw SuiteError.manifest(file: file, "stratum must be 'category' or 'subcategory', not '\(stratum)'")
        }
        _ = try PromptTemplate(prompt.template, file: file)
        if let judge, !["answer_extraction", "grading"].contains(judge.task) {
            throw SuiteError.manifest(file: file, "judge.task must be 'answer_extraction' or 'grading', not '\(judge.task)'")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, let context):
            return "missing key '\((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "wrong type at '\(context.codingPath.map(\.stringValue).joined(separator: "."))': \(context.debugDescription)"
        case .dataCorrupted(let context):
            return "invalid value at '\(context.codingPath.map(\.stringValue).joined(separator: "."))': \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}

/// Problems with suite definitions and lookups.
public enum SuiteError: Error, CustomStringConvertible, Equatable {
    case manifest(file: String, String)
    case unknownSuite(String, known: [String])
    case unknownScorer(String, suite: String)
    case duplicateSuite(String, first: String, second: String)
    case builtInSuitesNotFound(searched: [String])

    public var description: String {
        switch self {
        case .manifest(let file, let message): return "\(file): \(message)"
        case .unknownSuite(let id, let known):
            return "unknown suite '\(id)'; known suites: \(known.joined(separator: ", "))"
        case .unknownScorer(let name, let suite):
            return "suite '\(suite)' names scorer '\(name)', which does not exist; available: \(ScorerRegistry.names.joined(separator: ", "))"
        case .duplicateSuite(let id, let first, let second):
            return "suite '\(id)' is defined twice: \(first) and \(second)"
        case .builtInSuitesNotFound(let searched):
            return "cannot find the built-in Suites/ folder (looked in \(searched.joined(separator: ", "))); set ASSAY_SUITES_DIR or pass --suites-dir"
        }
    }
}
