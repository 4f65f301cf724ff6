import AssayCore
import AssaySuites
import Foundation
import VLMRuntime

/// Why training data cannot be used; every case names the file and, where there is one, the line.
public enum TrainingDataError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    case row(file: String, line: Int, reason: String)
    case empty(file: String)

    public var description: String {
        switch self {
        case let .unreadable(f, r): return "\(f): \(r)"
        case let .row(f, l, r): return "\(f):\(l): \(r)"
        case let .empty(f): return "\(f): no training rows"
        }
    }
}

/// How a row's completions are rewarded.
public enum TrainingRewardKind: String, Sendable, CaseIterable, Codable {
    /// The critic reward of the release: 0.9 · (boxed choice equals the label) + 0.1 · format.
    case critic
    /// The row's suite scores the completion with its own extraction and metric (`suite` column).
    case suite
}

/// One training row: `problem` (with `<image>` placeholders where images go, EasyR1's
/// convention), `answer`, `images` (paths relative to the data file), and optionally the suite
/// and item it came from.
public struct TrainingExample: Sendable {
    public var id: String
    public var problem: String
    public var answer: String
    public var imagePaths: [String]
    public var suite: String?
    public var line: Int
}

/// A JSONL data set for `assay train grpo`: a file, or a folder holding `train.jsonl` (what
/// `assay critic build` and `assay train data` write).
public struct TrainingData: Sendable {
    public var file: String
    public var examples: [TrainingExample]
    /// SHA-256 over the file's bytes and every image's bytes, in row order.
    public var sha256: String

    public static func load(path: String) throws -> TrainingData {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TrainingDataError.unreadable(file: path, reason: "no such file or folder")
        }
        let file = isDirectory.boolValue ? (path as NSString).appendingPathComponent("train.jsonl") : path
        guard let data = FileManager.default.contents(atPath: file) else {
            throw TrainingDataError.unreadable(file: file, reason: isDirectory.boolValue ? "the folder has no train.jsonl" : "cannot be read")
        }
        let base = (file as NSString).deletingLastPathComponent
        var hasher = SHA256()
        hasher.update(data)
        var examples: [TrainingExample] = []
        var ids = Set<String>()
        for (index, raw) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let line = index + 1
            let text = String(decoding: raw, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if text.isEmpty { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)), let row = object as? [String: Any] else {
                throw TrainingDataError.row(file: file, line: line, reason: "not a JSON object")
            }
            guard let problem = row["problem"] as? String, !problem.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw TrainingDataError.row(file: file, line: line, reason: "\"problem\" is missing or empty")
            }
            let answer: String
            if let s = row["answer"] as? String {
                answer = s
            } else if let n = row["answer"] as? NSNumber, n.objCType.pointee != CChar(UInt8(ascii: "c")) {
                answer = n.stringValue
            } else {
                throw TrainingDataError.row(file: file, line: line, reason: "\"answer\" is missing or not a string")
            }
            guard !answer.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw TrainingDataError.row(file: file, line: line, reason: "\"answer\" is empty")
            }
            var paths: [String] = []
            if let images = row["images"] {
                guard let list = images as? [String] else {
                    throw TrainingDataError.row(file: file, line: line, reason: "\"images\" must be a list of paths")
                }
                for p in list {
                    let full = p.hasPrefix("/") ? p : (base as NSString).appendingPathComponent(p)
                    guard let bytes = FileManager.default.contents(atPath: full) else {
                        throw TrainingDataError.row(file: file, line: line, reason: "image \(p) is missing (looked for \(full))")
                    }
                    guard ImageSniff.isImage(bytes) else {
                        throw TrainingDataError.row(file: file, line: line, reason: "image \(p) is not a PNG, JPEG, GIF, WebP or BMP file")
                    }
                    hasher.update(bytes)
                    paths.append(full)
                }
            }
            let placeholders = problem.components(separatedBy: "<image>").count - 1
            if placeholders > 0, placeholders != paths.count {
                throw TrainingDataError.row(file: file, line: line, reason: "\(placeholders) <image> placeholders for \(paths.count) images")
            }
            let suite = row["suite"] as? String
            var id = (row["id"] as? String) ?? [suite, row["item_id"] as? String].compactMap { $0 }.joined(separator: "/")
            if id.isEmpty || ids.contains(id) { id = "line-\(line)" }
            ids.insert(id)
            examples.append(TrainingExample(id: id, problem: problem, answer: answer, imagePaths: paths, suite: suite, line: line))
        }
        guard !examples.isEmpty else { throw TrainingDataError.empty(file: file) }
        return TrainingData(file: file, examples: examples, sha256: hasher.finalize().hexString)
    }

    /// The example at a global data position: epochs over the examples, each in its own seeded
    /// order (a Fisher–Yates shuffle of a SplitMix-seeded generator), so position p is a function
    /// of the seed alone and a resumed run draws exactly what an uninterrupted one would.
    public func example(at position: Int, seed: UInt64) -> TrainingExample {
        let n = examples.count
        let epoch = position / n
        let order = Self.permutation(n, seed: seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15)
        return examples[order[position % n]]
    }

    static func permutation(_ n: Int, seed: UInt64) -> [Int] {
        var random = SeededRandom(seed: seed)
        var order = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) {
                let j = Int(random.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        return order
    }
}

/// Scores completions of a training row.
public struct TrainingRewarder: Sendable {
    public let kind: TrainingRewardKind
    let catalog: SuiteCatalog
    let critic = CriticPreferenceReward()

    public init(kind: TrainingRewardKind, catalog: SuiteCatalog) {
        self.kind = kind
        self.catalog = catalog
    }

    /// Checks every row before training starts: a critic label must be 1 or 2; a suite row must
    /// name a suite of the catalog.
    public func check(_ data: TrainingData) throws {
        for e in data.examples {
            switch kind {
            case .critic:
                guard CriticLabel.parse(e.answer) != nil else {
                    throw TrainingDataError.row(file: data.file, line: e.line, reason: "answer \"\(e.answer)\" is not a critic label (1 or 2)")
                }
            case .suite:
                guard let id = e.suite else {
                    throw TrainingDataError.row(file: data.file, line: e.line, reason: "--reward suite needs a \"suite\" column")
                }
                guard (try? catalog.suite(id)) != nil else {
                    throw TrainingDataError.row(file: data.file, line: e.line, reason: "suite \"\(id)\" is not in the catalog")
                }
            }
        }
    }

    /// The item a suite scores (its question, answer and images as the row gives them).
    func item(_ e: TrainingExample) -> Item {
        Item(id: e.id, question: e.problem.replacingOccurrences(of: "<image>", with: ""), answers: [e.answer],
             images: e.imagePaths.map { ImageRef(sha256: $0, byteCount: 0, origin: $0) })
    }

    /// The chat messages of a row: the suite's own prompt for suite rows (what its evaluation
    /// shows the model), else the problem with each `<image>` placeholder replaced by its image.
    public func messages(_ e: TrainingExample) throws -> [VLMRuntime.ChatMessage] {
        func image(_ path: String) throws -> VLMRuntime.ChatMessage.Part {
            do { return .image(try ImageDecoder.loadRGB(path: path)) } catch {
                throw TrainingDataError.unreadable(file: path, reason: "the image does not decode: \(error)")
            }
        }
        if kind == .suite, let id = e.suite {
            let suite = try catalog.suite(id)
            return try suite.render(item(e)).map { message in
                VLMRuntime.ChatMessage(role: message.role.rawValue, parts: try message.content.map { part in
                    switch part {
                    case .text(let t): return .text(t)
                    case .image(let ref): return try image(ref.origin)
                    }
                })
            }
        }
        var parts: [VLMRuntime.ChatMessage.Part] = []
        let pieces = e.problem.components(separatedBy: "<image>")
        for (i, piece) in pieces.enumerated() {
            if i > 0 { parts.append(try image(e.imagePaths[i - 1])) }
            if !piece.isEmpty { parts.append(.text(piece)) }
        }
        if pieces.count == 1 { parts = try e.imagePaths.map(image) + parts }
        return [VLMRuntime.ChatMessage(role: "user", parts: parts)]
    }

    public func score(_ response: String, example e: TrainingExample) throws -> RewardScore {
        switch kind {
        case .critic:
            return critic.score(RewardInput(response: response, groundTruth: e.answer))
        case .suite:
            guard let id = e.suite else { throw TrainingDataError.row(file: "", line: e.line, reason: "no suite") }
            return SuiteReward(suite: try catalog.suite(id)).score(response: response, item: item(e))
        }
    }
}
