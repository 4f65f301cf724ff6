import AssayCore
import Foundation

/// The suite-specific half of a suite: how an answer is read from a response, how it is matched
/// against the gold answer, and which extra metrics the benchmark's authors report. One Swift type
/// per plugin name (`multiple_choice`, `yes_no`, `mmmu`, …); a suite's YAML names its plugin.
public protocol SuiteScorer: Sendable {
    /// Version of the extraction, matching and metric rules; recorded next to every score.
    var version: String { get }
    /// Rewrites a dataset file before items are built (official key names to VLMEvalKit ones,
    /// path columns to `image_path`). The default returns the file unchanged.
    func adapt(_ file: DatasetFile) throws -> DatasetFile
    /// Reads suite-specific columns after the generic ones (`Item` fields and `metadata`).
    func prepare(_ item: inout Item, row: DatasetRow) throws
    /// `prepare(_:row:)` for scorers that need the item's encoded image bytes (pixel sizes for
    /// click points); the bytes are passed even when the loader does not keep them.
    func prepare(_ item: inout Item, row: DatasetRow, imageData: [Data]) throws
    /// Turns one dataset item into the items actually asked: itself by default; a preference
    /// pair in both orders, or each rotation of a CircularEval question. Expanded items need ids
    /// unique within the suite and should record their group in `metadata` for `bootstrapUnits`.
    func expand(_ item: Item) throws -> [Item]
    /// Extra prompt-template variables for an item (beyond the generic ones).
    func templateVariables(for item: Item) -> [String: String]
    /// Finds the answer in a raw response. Never guesses: unparsed is an outcome.
    func extract(_ response: String, item: Item) -> Extraction
    /// Reads an extraction that came with imported predictions (scored as is); a benchmark's own
    /// "failed" marker becomes `unparsed`.
    func imported(_ extraction: String, item: Item) -> Extraction
    /// Scores an extraction (an unparsed extraction scores 0).
    func score(_ extraction: Extraction, item: Item) -> ItemScore
    /// Resampling units for the headline and its confidence intervals (default: one per item).
    func bootstrapUnits(_ results: [ScoredItem], stratum: (Item) -> String) -> [BootstrapUnit]
    /// Metrics beyond accuracy and the per-category breakdowns, in percent.
    func extraMetrics(_ results: [ScoredItem]) -> [String: Double]
}

extension SuiteScorer {
    public func adapt(_ file: DatasetFile) throws -> DatasetFile { file }
    public func prepare(_ item: inout Item, row: DatasetRow) throws {}
    public func prepare(_ item: inout Item, row: DatasetRow, imageData: [Data]) throws {
        try prepare(&item, row: row)
    }
    public func expand(_ item: Item) throws -> [Item] { [item] }
    public func imported(_ extraction: String, item: Item) -> Extraction {
        extraction.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            ? .unparsed(reason: "empty imported extraction") : .answer(extraction, method: "imported")
    }
    public func templateVariables(for item: Item) -> [String: String] { [:] }
    public func bootstrapUnits(_ results: [ScoredItem], stratum: (Item) -> String) -> [BootstrapUnit] {
        results.map { BootstrapUnit(id: $0.item.id, stratum: stratum($0.item), value: $0.score.value) }
    }
    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] { [:] }
}

/// A benchmark as Assay runs it: its manifest (data), prompt template and scorer plugin.
public struct Suite: Sendable {
    public let manifest: SuiteManifest
    public let scorer: any SuiteScorer
    public let template: PromptTemplate

    public init(manifest: SuiteManifest, scorer: any SuiteScorer) throws {
        self.manifest = manifest
        self.scorer = scorer
        self.template = try PromptTemplate(manifest.prompt.template, file: manifest.directory ?? manifest.id)
    }

    public var id: String { manifest.id }
    /// `<id>@<manifest version>`.
    public var version: String { "\(manifest.id)@\(manifest.version)" }
    /// `<plugin>/<plugin version>`, stored with every score.
    public var scorerVersion: String { "\(manifest.scorer)/\(scorer.version)" }
    /// The prompt's version and a hash of its text, so an edited template is never mistaken for
    /// the old one in cache keys.
    public var promptVersion: String {
        let digest = SHA256.hex((manifest.prompt.system ?? "") + "\u{1}" + manifest.prompt.template)
        return "\(manifest.prompt.version)-\(digest.prefix(12))"
    }

    // MARK: Items

    /// Builds items from a dataset file, checking required columns, list answers and images.
    /// Items of video suites get `video.frames` frames sampled with ffmpeg, placed before their
    /// own images (not when only hashing: an import does not need the pictures).
    public func loadItems(
        from file: DatasetFile, images: ImageLoading = .keep, video: VideoSampling = VideoSampling(),
        access: ImageAccess = ImageAccess()
    ) throws -> [LoadedItem] {
        let adapted = try scorer.adapt(file)
        let items = try ItemBuilder(manifest: manifest, scorer: scorer, file: adapted, images: images, access: access).build()
        guard let source = scorer as? VideoFrameSource, case .keep = images else { return items }
        return try VideoFrames.attach(to: items, source: source, datasetFile: adapted, sampling: video)
    }

    /// Items of a suite whose data Assay generates itself (`source.format: generated`), with their
    /// checksum; `nil` for suites that read a dataset file. `count` overrides the manifest's.
    public func generatedItems(count: Int? = nil) throws -> (items: [LoadedItem], sha256: String)? {
        guard let source = manifest.source, source.format == "generated" else { return nil }
        switch source.name ?? manifest.id {
        case "sanity":
            let items = try SanityGenerator.items(count: count ?? source.count ?? 200, seed: source.seed ?? 0)
            return (items, SanityGenerator.checksum(items))
        case "arithmetic":
            let items = ArithmeticGenerator.items(count: count ?? source.count ?? 300, seed: source.seed ?? 0)
            return (items, ArithmeticGenerator.checksum(items))
        default:
            throw SuiteError.manifest(file: manifest.directory ?? manifest.id, "unknown generator '\(source.name ?? "")'")
        }
    }

    // MARK: Prompt

    /// The chat messages for an item: an optional system message, then one user turn with the
    /// item's images (before the text by default) and the rendered template.
    public func render(_ item: Item) -> [Message] {
        var variables: [String: String] = [
            "question": item.question,
            "hint": item.hint ?? "",
            "options": item.options.map { "\($0.label). \($0.text)" }.joined(separator: "\n"),
            "options_paren": item.options.map { "(\($0.label)) \($0.text)" }.joined(separator: "\n"),
            "options_inline": item.options.map { "(\($0.label)) \($0.text)" }.joined(separator: " "),
            "option_labels": item.optionLabels.joined(separator: ", "),
            "category": item.category ?? "",
            "subcategory": item.subcategory ?? "",
        ]
        for (key, value) in item.metadata {
            variables["meta." + key] = value.text ?? ""
        }
        variables.merge(scorer.templateVariables(for: item)) { _, new in new }
        let text = template.render(variables)
        var parts: [ContentPart] = item.images.map { .image($0) }
        if manifest.prompt.images == "after" {
            parts.insert(.text(text), at: 0)
        } else {
            parts.append(.text(text))
        }
        var messages: [Message] = []
        if let system = manifest.prompt.system, !system.isEmpty { messages.append(.system(system)) }
        messages.append(.user(parts))
        return messages
    }

    /// The text of the item's user turn as the model reads it (images left out): what a critic
    /// is shown as "the question" the responses answered.
    public func userText(_ item: Item) -> String {
        render(item).filter { $0.role == .user }.flatMap(\.content).compactMap { part -> String? in
            if case .text(let text) = part { return text }
            return nil
        }.joined(separator: "\n")
    }

    // MARK: Scoring

    /// The longest response the rules read. Answer rules scan the text several times (about 4 s
    /// per MB); a response this long is degenerate output (a 2,048-token answer is ~10 KB), so it
    /// is unparsed (and a judge may still read it) rather than a minute of scoring.
    public static let maxScoredBytes = 256 * 1024

    public func extract(_ response: String, item: Item) -> Extraction {
        let bytes = response.utf8.count
        guard bytes <= Self.maxScoredBytes else {
            return .unparsed(reason: "response of \(bytes) bytes is longer than the \(Self.maxScoredBytes) the rules read")
        }
        return scorer.extract(response, item: item)
    }

    public func imported(_ extraction: String, item: Item) -> Extraction {
        scorer.imported(extraction, item: item)
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        if extraction.isUnparsed { return .binary(false) }
        return scorer.score(extraction, item: item)
    }

    public var headlineStatistic: HeadlineStatistic { manifest.headline }

    /// The stratum of an item for macro means and per-group breakdowns.
    public func stratum(of item: Item) -> String {
        switch manifest.stratum {
        case "subcategory": return item.subcategory ?? ""
        case "category": return item.category ?? ""
        default: return ""
        }
    }

    public func bootstrapUnits(_ results: [ScoredItem]) -> [BootstrapUnit] {
        scorer.bootstrapUnits(results, stratum: stratum(of:))
    }

    /// The suite's metrics over scored items (`missing` is filled in by the caller, which knows
    /// which items had no usable response).
    public func aggregate(_ results: [ScoredItem]) -> SuiteMetrics {
        let units = bootstrapUnits(results)
        let headline = Statistics.headline(units, statistic: manifest.headline) * 100
        var metrics: [String: Double] = [:]
        if !results.isEmpty {
            metrics["accuracy"] = results.reduce(0) { $0 + $1.score.value } / Double(results.count) * 100
        }
        for (name, key) in [("category", \Item.category), ("subcategory", \Item.subcategory)] {
            var groups: [String: (Double, Int)] = [:]
            for result in results {
                guard let value = result.item[keyPath: key], !value.isEmpty else { continue }
                let current = groups[value] ?? (0, 0)
                groups[value] = (current.0 + result.score.value, current.1 + 1)
            }
            for (group, (sum, count)) in groups {
                metrics["\(name)/\(group)"] = sum / Double(count) * 100
            }
        }
        if manifest.headline == .macroMean { metrics["macro_mean"] = headline }
        metrics.merge(scorer.extraMetrics(results)) { _, new in new }
        let unparsed = results.filter { $0.extraction.isUnparsed }.count
        return SuiteMetrics(score: headline, n: results.count, unparsed: unparsed, missing: 0, metrics: metrics)
    }
}

/// Whether item loading keeps image bytes (a sweep needs them), or only checks and hashes them
/// (an import of predictions, where images may even be absent).
public enum ImageLoading: Sendable {
    case keep
    case hashOnly
}
