import AssayCore
import Foundation

/// Turns dataset rows into items: the VLMEvalKit columns (`index`, `question`, `hint`, option
/// columns `A`…, `answer`, `category`, `l2-category`, `image`, `image_path`), then the scorer's
/// own columns; every other column is kept as metadata.
struct ItemBuilder {
    let manifest: SuiteManifest
    let scorer: any SuiteScorer
    let file: DatasetFile
    let images: ImageLoading
    let access: ImageAccess

    static let letterColumns = (65...90).map { String(UnicodeScalar(UInt8($0))) }
    static let standardColumns: Set<String> = Set(
        ["index", "question", "hint", "answer", "category", "l2-category", "l2_category", "image", "image_path"]
            + letterColumns)

    func build() throws -> [LoadedItem] {
        try checkColumns()
        // Rows whose `image` is a short string point at another row's image by index.
        var imageByIndex: [String: String] = [:]
        if file.columns.contains("image") {
            for row in file.rows {
                if let index = row.text("index"), let image = row.text("image"), image.count > 64 {
                    imageByIndex[index] = image
                }
            }
        }
        var seen: [String: Int] = [:]
        var items: [LoadedItem] = []
        items.reserveCapacity(file.rows.count)
        for row in file.rows where manifest.filter.allSatisfy({ row.text($0.key) == $0.value || !row.has($0.key) }) {
            let loaded = try buildItem(row, imageByIndex: imageByIndex)
            if let first = seen[loaded.item.id] {
                throw DatasetError(file: file.url.path, line: row.line,
                                   "duplicate index '\(loaded.item.id)' (first on line \(first))")
            }
            seen[loaded.item.id] = row.line
            let expanded: [Item]
            do {
                expanded = try scorer.expand(loaded.item)
            } catch let error as DatasetError {
                throw error
            } catch {
                throw DatasetError(file: file.url.path, line: row.line, "\(error)")
            }
            for item in expanded {
                items.append(LoadedItem(item: item, imageData: loaded.imageData, unusable: loaded.unusable))
            }
        }
        return items
    }

    private func checkColumns() throws {
        for column in manifest.columns.required {
            let alternatives = column == "l2-category" ? ["l2-category", "l2_category"] : [column]
            if file.name.lowercased().hasSuffix(".tsv") {
                if !alternatives.contains(where: file.columns.contains) {
                    throw DatasetError(
                        file: file.url.path, line: 1,
                        "missing required column '\(column)' for suite '\(manifest.id)' (header has: \(file.columns.joined(separator: ", ")))")
                }
            } else {
                for row in file.rows where !alternatives.contains(where: row.has) {
                    throw DatasetError(file: file.url.path, line: row.line,
                                       "missing required key '\(column)' for suite '\(manifest.id)'")
                }
            }
        }
    }

    private func buildItem(_ row: DatasetRow, imageByIndex: [String: String]) throws -> LoadedItem {
        guard let id = row.text("index") else {
            throw DatasetError(file: row.file, line: row.line, "empty 'index'")
        }
        var item = Item(id: id)
        item.question = row.text("question") ?? ""
        item.hint = row.text("hint")
        item.category = row.text("category")
        item.subcategory = row.text("l2-category") ?? row.text("l2_category")
        item.options = Self.letterColumns.compactMap { label in
            row.text(label).map { AnswerOption(label: label, text: $0) }
        }
        if item.options.isEmpty, let choices = try row.list("choices") {
            item.options = choices.enumerated().map { AnswerOption(label: Self.letterColumns[$0.offset % 26], text: $0.element) }
        }
        switch manifest.answerFormat {
        case .anyOf: item.answers = try row.list("answer") ?? []
        case .literal: item.answers = row.text("answer").map { [$0] } ?? []
        }
        for (key, value) in row.values where !Self.standardColumns.contains(key) {
            item.metadata[key] = value
        }
        let (refs, data, allData, unusable) = try readImages(row, id: id, imageByIndex: imageByIndex)
        item.images = refs
        // An unusable item is never asked or scored: its scorer does not read the refused bytes.
        if unusable == nil { try scorer.prepare(&item, row: row, imageData: allData) }
        return LoadedItem(item: item, imageData: data, unusable: unusable)
    }

    /// The image refs, the bytes kept for the sweep, all bytes read (for `prepare`), and — when
    /// the pictures are kept for a model — why a path cannot be sent (refused, missing, not an
    /// image): that item alone is unusable, the others load. Malformed rows (bad base64, a dangling
    /// index) still fail the load: the file itself is wrong.
    private func readImages(_ row: DatasetRow, id: String, imageByIndex: [String: String]) throws -> ([ImageRef], [Data], [Data], String?) {
        var refs: [ImageRef] = []
        var datas: [Data] = []
        var all: [Data] = []
        func add(_ data: Data, origin: String) {
            refs.append(ImageRef(sha256: SHA256.hex(data), byteCount: data.count, origin: origin))
            all.append(data)
            if case .keep = images { datas.append(data) }
        }
        if var field = row.text("image") {
            if field.count <= 64, !field.hasPrefix("[") {
                guard let target = imageByIndex[field] else {
                    throw DatasetError(file: row.file, line: row.line,
                                       "image refers to index '\(field)', which has no image of its own")
                }
                field = target
            }
            let encoded = field.hasPrefix("[") ? (try row.list("image") ?? []) : [field]
            for (offset, base64) in encoded.enumerated() {
                let compact = base64.filter { !$0.isWhitespace }
                guard let data = Data(base64Encoded: compact), !data.isEmpty else {
                    throw DatasetError(file: row.file, line: row.line,
                                       "image \(offset + 1) of item '\(id)' is not valid base64")
                }
                add(data, origin: "\(file.name):\(row.line)")
            }
        } else if let paths = try row.list("image_path") {
            let base = file.url.deletingLastPathComponent()
            for path in paths {
                let resolved: String
                do {
                    resolved = try access.resolve(path, datasetDirectory: base)
                } catch let refusal as ImageAccess.Refusal {
                    if case .hashOnly = images { continue }  // imports neither need nor send the pictures
                    return (refs, [], all, "\(row.file):\(row.line): item '\(id)': \(refusal)")
                }
                guard let data = FileManager.default.contents(atPath: resolved) else {
                    if case .hashOnly = images { continue }
                    return (refs, [], all, "\(row.file):\(row.line): item '\(id)': image file unreadable: \(resolved)")
                }
                add(data, origin: resolved)
            }
        }
        if case .keep = images {
            // Only pictures leave for a model server: bytes that are not an image are refused here.
            for (offset, data) in datas.enumerated() {
                do {
                    try access.check(data, name: refs[offset].origin)
                } catch {
                    return (refs, [], all, "\(row.file):\(row.line): item '\(id)': \(error)")
                }
            }
        }
        return (refs, datas, all, nil)
    }
}
