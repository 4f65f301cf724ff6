import Foundation

/// One question of a benchmark, as a suite adapter builds it from a dataset row.
///
/// Image bytes are not part of an item: `images` holds content hashes, and the dataset loader
/// keeps the bytes beside the item (`LoadedItem`) for as long as a sweep needs them. That keeps
/// what the store persists small and makes the rendered prompt hashable.
public struct Item: Codable, Sendable, Hashable {
    /// The dataset's own identifier (`index` column), unique within a suite.
    public var id: String
    public var question: String
    /// VLMEvalKit's `hint` column: context printed before the question.
    public var hint: String?
    /// Multiple-choice options in order (`A`, `B`, … columns, or a `choices` list).
    public var options: [AnswerOption]
    /// Gold answers; any one of them counts as correct. Empty when the dataset has no gold.
    public var answers: [String]
    /// Subtask, subject or category used for per-category metrics.
    public var category: String?
    /// VLMEvalKit's `l2-category`.
    public var subcategory: String?
    public var images: [ImageRef]
    /// Every other column of the row, kept verbatim.
    public var metadata: [String: JSONValue]

    public init(
        id: String, question: String = "", hint: String? = nil, options: [AnswerOption] = [],
        answers: [String] = [], category: String? = nil, subcategory: String? = nil,
        images: [ImageRef] = [], metadata: [String: JSONValue] = [:]
    ) {
        self.id = id
        self.question = question
        self.hint = hint
        self.options = options
        self.answers = answers
        self.category = category
        self.subcategory = subcategory
        self.images = images
        self.metadata = metadata
    }

    /// The first gold answer, or the empty string when there is none.
    public var answer: String { answers.first ?? "" }

    /// The option labels in order (`["A", "B", "C"]`).
    public var optionLabels: [String] { options.map(\.label) }

    /// A metadata value as text, or `nil` when absent or null.
    public func meta(_ key: String) -> String? { metadata[key]?.text }
}

/// One multiple-choice option.
public struct AnswerOption: Codable, Sendable, Hashable {
    public var label: String
    public var text: String
    public init(label: String, text: String) {
        self.label = label
        self.text = text
    }
}

/// A reference to image bytes by content hash, with a note on where the bytes came from.
public struct ImageRef: Codable, Sendable, Hashable {
    /// Lower-case hex SHA-256 of the encoded image bytes.
    public var sha256: String
    public var byteCount: Int
    /// Where the bytes were read: `"<file>:<line>"` for an embedded image, or a path.
    public var origin: String

    public init(sha256: String, byteCount: Int, origin: String) {
        self.sha256 = sha256
        self.byteCount = byteCount
        self.origin = origin
    }
}

/// An item together with the encoded bytes of its images, in the order of `item.images`.
public struct LoadedItem: Sendable {
    public var item: Item
    public var imageData: [Data]
    /// Why the item cannot be asked (an image path outside the allowed folders, a missing or
    /// unreadable file, bytes that are not a picture), naming the file, line and item; nil when it
    /// can. Such an item stays in the suite and is stored as an error, and the rest of the run goes on.
    public var unusable: String?
    public init(item: Item, imageData: [Data] = [], unusable: String? = nil) {
        self.item = item
        self.imageData = imageData
        self.unusable = unusable
    }
}
