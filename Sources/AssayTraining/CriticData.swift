import AssayCore
import AssayEngine
import AssayStore
import AssaySuites
import Foundation

/// Problems with critic data sources; each names the file and row, or the run.
public enum CriticDataError: Error, CustomStringConvertible, Equatable {
    case row(file: String, line: Int, String)
    case noRuns
    case nothingToWrite(String)

    public var description: String {
        switch self {
        case .row(let file, let line, let message): return "\(file):\(line): \(message)"
        case .noRuns: return "--from-runs needs at least one run"
        case .nothingToWrite(let why): return "no critic pairs: \(why)"
        }
    }
}

/// A verified preference: two responses to one prompt, the first of them better.
public struct CriticPair: Sendable, Hashable {
    /// The suite the item comes from (`preference` for a plain preference file).
    public var suite: String
    public var itemID: String
    /// The prompt the responses answered, as the policy saw it.
    public var question: String
    /// Encoded image bytes, in prompt order.
    public var images: [Data]
    public var better: String
    public var worse: String
    /// Where the pair came from (`run:sample` of each response, or `file:line`).
    public var provenance: String

    public init(suite: String, itemID: String, question: String, images: [Data] = [], better: String, worse: String, provenance: String) {
        self.suite = suite
        self.itemID = itemID
        self.question = question
        self.images = images
        self.better = better
        self.worse = worse
        self.provenance = provenance
    }
}

/// One written RL prompt: EasyR1's columns (`problem`, `answer`, `images`) and Assay's metadata.
public struct CriticExample: Codable, Sendable, Hashable {
    /// `<image>` per image, then the critic prompt with the two responses in this example's order.
    public var problem: String
    /// `1` or `2`: the position of the better response.
    public var answer: String
    /// Image paths relative to the data folder.
    public var images: [String]
    public var suite: String
    public var item_id: String
    /// `better_first` or `better_second`.
    public var order: String
    public var split: String
    public var source: String
    public var prompt_version: String
    /// The pair as shown in `problem` (for evaluations that ask it in both orders: the
    /// `critic-pairs` suite).
    public var question: String
    public var response_1: String
    public var response_2: String
}

/// What a build did, printed by `assay critic build`.
public struct CriticBuildSummary: Sendable, Hashable {
    public init() {}
    public var pairsBySuite: [String: Int] = [:]
    public var betterFirst = 0
    public var betterSecond = 0
    public var train = 0
    public var test = 0
    /// Rows or candidate pairs left out, by reason.
    public var dropped: [String: Int] = [:]
}

/// `assay critic build`: turns pairwise data into verifiable RL prompts for critic GRPO — from
/// stored evaluations (a correct and a wrong response to one item) or from preference files —
/// with the two orders balanced by a seed, duplicates removed and a held-out split by item.
public enum CriticDataBuilder {
    // MARK: - Sources

    /// Pairs from runs: for each item of each suite the runs share, every stored usable response
    /// scored correct (score 1) against every one scored wrong (score 0) — across runs and
    /// samples — with different texts. Items' images come from the runs' datasets.
    public static func pairs(fromRuns names: [String], store: Store, catalog: SuiteCatalog, suites only: Set<String>?,
                             dataDirectory: URL?, summary: inout CriticBuildSummary) throws -> [CriticPair] {
        guard !names.isEmpty else { throw CriticDataError.noRuns }
        let runs = try names.map { try store.requireRun($0) }
        var pairs: [CriticPair] = []
        var registrations: [String: SuiteRegistration] = [:]
        for run in runs {
            for registration in try store.runSuites(runID: run.id) where only?.contains(registration.suiteID) ?? true {
                registrations[registration.suiteID] = registrations[registration.suiteID] ?? registration
            }
        }
        for (suiteID, registration) in registrations.sorted(by: { $0.key < $1.key }) {
            let suite = try catalog.suite(suiteID)
            // (response text, score, provenance) by item.
            var byItem: [String: [(text: String, value: Double, from: String)]] = [:]
            var order: [String] = []
            for run in runs {
                guard let own = try store.runSuites(runID: run.id).first(where: { $0.suiteID == suiteID }),
                      own.datasetSHA256 == registration.datasetSHA256 else { continue }
                let texts = Dictionary(try store.responses(runID: run.id, suiteID: suiteID).map { ("\($0.itemID)\u{1}\($0.sampleIndex)", $0.response.text) },
                                       uniquingKeysWith: { a, _ in a })
                for score in try store.scores(runID: run.id, suiteID: suiteID) {
                    guard let text = texts["\(score.item.id)\u{1}\(score.sampleIndex)"] else { continue }
                    if byItem[score.item.id] == nil { order.append(score.item.id) }
                    byItem[score.item.id, default: []].append((text, score.score.value, "\(run.name)#\(score.sampleIndex)"))
                }
            }
            let needsImages = try store.items(suiteID: suiteID, datasetSHA256: registration.datasetSHA256).contains { !$0.images.isEmpty }
            var loaded: [String: LoadedItem] = [:]
            if needsImages {
                for item in try RunDataset.loadItems(suite: suite, registration: registration, dataDirectory: dataDirectory) {
                    loaded[item.item.id] = item
                }
            }
            let items = Dictionary(try store.items(suiteID: suiteID, datasetSHA256: registration.datasetSHA256).map { ($0.id, $0) },
                                   uniquingKeysWith: { a, _ in a })
            for itemID in order {
                guard let item = items[itemID], let responses = byItem[itemID] else { continue }
                let right = responses.filter { $0.value == 1 }, wrong = responses.filter { $0.value == 0 }
                if right.isEmpty || wrong.isEmpty {
                    summary.dropped[right.isEmpty ? "items with no correct response" : "items with no wrong response", default: 0] += 1
                    continue
                }
                let question = suite.userText(item)
                for r in right {
                    for w in wrong {
                        if r.text == w.text {
                            summary.dropped["identical texts scored differently", default: 0] += 1
                            continue
                        }
                        // An empty answer against any answer teaches nothing about judging.
                        if w.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                            summary.dropped["pairs with an empty response", default: 0] += 1
                            continue
                        }
                        pairs.append(CriticPair(suite: suiteID, itemID: itemID, question: question,
                                                images: loaded[itemID]?.imageData ?? [], better: r.text, worse: w.text,
                                                provenance: "\(r.from) > \(w.from)"))
                    }
                }
            }
        }
        return pairs
    }

    /// Pairs from a JSON Lines preference file: `question`, `response_1`, `response_2`,
    /// `preferred` (1 or 2), and optionally `image`/`image_path` or `images` (paths relative to
    /// the file's folder), `id`. Every row is checked before anything is returned.
    public static func pairs(fromPreferenceFile url: URL) throws -> [CriticPair] {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw CriticDataError.row(file: url.path, line: 0, "cannot read the file as UTF-8 text: \(error.localizedDescription)")
        }
        var pairs: [CriticPair] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            func fail(_ message: String) -> CriticDataError { .row(file: url.path, line: index + 1, message) }
            guard let row = try? JSONDecoder().decode([String: JSONValue].self, from: Data(trimmed.utf8)) else {
                throw fail("not a JSON object")
            }
            guard let question = row["question"]?.text, !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw fail("'question' is missing or empty")
            }
            guard let r1 = row["response_1"]?.text, let r2 = row["response_2"]?.text else { throw fail("'response_1' and 'response_2' are required") }
            guard !r1.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, !r2.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw fail("a response is empty")
            }
            guard let preferred = row["preferred"]?.text, preferred == "1" || preferred == "2" else {
                throw fail("'preferred' must be 1 or 2, not \(row["preferred"]?.text.map { "'\($0)'" } ?? "missing")")
            }
            var paths: [String] = []
            if case .array(let list)? = row["images"] { paths = list.compactMap(\.text) }
            if let single = row["image_path"]?.text ?? row["image"]?.text { paths.append(single) }
            var images: [Data] = []
            for path in paths {
                let resolved = path.hasPrefix("/") ? URL(fileURLWithPath: path) : url.deletingLastPathComponent().appendingPathComponent(path)
                guard let data = try? Data(contentsOf: resolved), !data.isEmpty else { throw fail("image '\(path)' cannot be read (\(resolved.path))") }
                guard ImageSniff.isImage(data) else { throw fail("'\(path)' is not a PNG, JPEG, GIF, WebP or BMP image") }
                images.append(data)
            }
            let (better, worse) = preferred == "1" ? (r1, r2) : (r2, r1)
            pairs.append(CriticPair(suite: row["suite"]?.text ?? "preference", itemID: row["id"]?.text ?? row["index"]?.text ?? "line-\(index + 1)",
                                    question: question, images: images, better: better, worse: worse,
                                    provenance: "\(url.lastPathComponent):\(index + 1)"))
        }
        return pairs
    }

    // MARK: - Writing

    /// Removes duplicates, balances the two orders with the seed, splits by item and writes
    /// `train.jsonl`, `test.jsonl`, `images/` and `manifest.json` into `out` (written under a
    /// temporary name and renamed, so an interrupted build never leaves a folder that looks done).
    public static func write(_ pairs: [CriticPair], to out: URL, seed: UInt64, testFraction: Double, limit: Int?,
                             summary: inout CriticBuildSummary) throws {
        var seen = Set<String>()
        var unique: [CriticPair] = []
        for pair in pairs {
            let key = SHA256.hex([pair.suite, pair.itemID, pair.better, pair.worse].joined(separator: "\u{1}"))
            if seen.insert(key).inserted { unique.append(pair) } else { summary.dropped["duplicate pairs", default: 0] += 1 }
        }
        // A seeded order that does not depend on how the sources listed the pairs.
        var keyed = unique.map { pair in
            (SHA256.hex("\(seed)|\(pair.suite)|\(pair.itemID)|\(pair.better)|\(pair.worse)"), pair)
        }
        keyed.sort { $0.0 < $1.0 }
        if let limit, keyed.count > limit {
            summary.dropped["over --limit", default: 0] += keyed.count - limit
            keyed = Array(keyed.prefix(max(0, limit)))
        }
        guard !keyed.isEmpty else { throw CriticDataError.nothingToWrite("no item has both a better and a worse response") }

        let fm = FileManager.default
        let temporary = out.deletingLastPathComponent().appendingPathComponent(".\(out.lastPathComponent).partial-\(UUID().uuidString)")
        try fm.createDirectory(at: temporary.appendingPathComponent("images"), withIntermediateDirectories: true)
        var train = "", test = ""
        for (index, (_, pair)) in keyed.enumerated() {
            // Alternating over a seeded order: the better response is first in half the pairs.
            let betterFirst = index % 2 == 0
            var paths: [String] = []
            for data in pair.images {
                let name = "images/\(SHA256.hex(data)).\(ImageSniff.fileExtension(data))"
                let target = temporary.appendingPathComponent(name)
                if !fm.fileExists(atPath: target.path) { try data.write(to: target) }
                paths.append(name)
            }
            let split = isHeldOut(suite: pair.suite, item: pair.itemID, seed: seed, fraction: testFraction) ? "test" : "train"
            let text = CriticPrompt.text(question: pair.question, first: betterFirst ? pair.better : pair.worse,
                                         second: betterFirst ? pair.worse : pair.better)
            let example = CriticExample(
                problem: String(repeating: "<image>", count: pair.images.count) + text, answer: betterFirst ? "1" : "2",
                images: paths, suite: pair.suite, item_id: pair.itemID, order: betterFirst ? "better_first" : "better_second",
                split: split, source: pair.provenance, prompt_version: CriticPrompt.version, question: pair.question,
                response_1: betterFirst ? pair.better : pair.worse, response_2: betterFirst ? pair.worse : pair.better)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let line = String(decoding: try encoder.encode(example), as: UTF8.self) + "\n"
            if split == "test" { test += line; summary.test += 1 } else { train += line; summary.train += 1 }
            summary.pairsBySuite[pair.suite, default: 0] += 1
            if betterFirst { summary.betterFirst += 1 } else { summary.betterSecond += 1 }
        }
        try Data(train.utf8).write(to: temporary.appendingPathComponent("train.jsonl"))
        try Data(test.utf8).write(to: temporary.appendingPathComponent("test.jsonl"))
        let manifest: [String: JSONValue] = [
            "seed": .number(Double(seed)), "test_fraction": .number(testFraction), "prompt_version": .string(CriticPrompt.version),
            "pairs": .number(Double(keyed.count)), "train": .number(Double(summary.train)), "test": .number(Double(summary.test)),
            "better_first": .number(Double(summary.betterFirst)), "better_second": .number(Double(summary.betterSecond)),
            "pairs_by_suite": .object(summary.pairsBySuite.mapValues { .number(Double($0)) }),
            "dropped": .object(summary.dropped.mapValues { .number(Double($0)) }),
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try encoder.encode(JSONValue.object(manifest)).write(to: temporary.appendingPathComponent("manifest.json"))
        if fm.fileExists(atPath: out.path) { try fm.removeItem(at: out) }
        try fm.moveItem(at: temporary, to: out)
    }

    /// Whether an item belongs to the held-out split: decided by the item alone (a hash of the
    /// seed, suite and item id), so no item is ever on both sides.
    public static func isHeldOut(suite: String, item: String, seed: UInt64, fraction: Double) -> Bool {
        guard fraction > 0 else { return false }
        let digest = SHA256.hex("split|\(seed)|\(suite)|\(item)")
        let value = Double(UInt64(digest.prefix(12), radix: 16) ?? 0) / Double(1 << 48)
        return value < fraction
    }
}

/// Recognises encoded images by their signature (what a file claims to be is not trusted).
public enum ImageSniff {
    public static func isImage(_ data: Data) -> Bool { fileExtension(data) != "bin" }

    public static func fileExtension(_ data: Data) -> String {
        let b = [UInt8](data.prefix(12))
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return "png" }
        if b.starts(with: [0xFF, 0xD8, 0xFF]) { return "jpg" }
        if b.starts(with: Array("GIF8".utf8)) { return "gif" }
        if b.count >= 12, b.starts(with: Array("RIFF".utf8)), Array(b[8..<12]) == Array("WEBP".utf8) { return "webp" }
        if b.starts(with: Array("BM".utf8)) { return "bmp" }
        return "bin"
    }
}
