import AssayCore
import Foundation

/// GUI grounding: ScreenSpot (Cheng et al., 2024, SeeClick) and ScreenSpot-Pro (Li et al., 2025).
/// The model names a point to click; it is right when the point lies inside the target element's
/// box (edges included), as both official evaluations decide.
///
/// The point is read by `ClickPointParser` (pixels, 0–1 fractions, Qwen-style thousandths, or a
/// box taken at its centre) and converted to pixels of the screenshot, whose size is read from
/// the image header when items are built. A response without coordinates is `unparsed` (the
/// official scripts' "wrong format"), counted and scored wrong.
///
/// - ScreenSpot: boxes are `[x, y, width, height]`; items are grouped by platform (mobile,
///   desktop, web, from `data_source`) and element type (text, icon); the headline is SeeClick's
///   "Average", the unweighted mean of the six platform × type accuracies.
/// - ScreenSpot-Pro: boxes are `[x1, y1, x2, y2]`; items are grouped by application group
///   (`category`) and application; the headline is the overall accuracy.
public struct ScreenSpotScorer: SuiteScorer {
    /// Which benchmark's box format and breakdowns apply.
    public enum Variant: String, Sendable {
        case screenSpot = "screenspot"
        case pro = "screenspot_pro"
    }

    public let variant: Variant
    public let version = "1"

    public init(variant: Variant) {
        self.variant = variant
    }

    // MARK: Items

    public func prepare(_ item: inout Item, row: DatasetRow, imageData: [Data]) throws {
        guard let raw = row.text("bbox"), let values = ListLiteral.parse(raw)?.compactMap({ Double($0) }), values.count == 4 else {
            throw DatasetError(file: row.file, line: row.line, "column 'bbox' must hold four numbers, found '\(row.text("bbox") ?? "")'")
        }
        let box: [Double]
        switch variant {
        case .screenSpot: box = [values[0], values[1], values[0] + values[2], values[1] + values[3]]
        case .pro: box = values
        }
        // VLMEvalKit tolerates -1 for an edge at the border.
        item.metadata["target_box"] = .array(box.map { .number($0 == -1 ? 0 : $0) })
        if let data = imageData.first {
            guard let size = ImageSize.read(data) else {
                throw DatasetError(file: row.file, line: row.line, "cannot read the screenshot's pixel size (not PNG, JPEG, GIF, BMP or WebP)")
            }
            item.metadata["image_width"] = .number(Double(size.width))
            item.metadata["image_height"] = .number(Double(size.height))
        }
        let type = (row.text("data_type") ?? row.text("ui_type") ?? "unknown").lowercased()
        item.metadata["element_type"] = .string(type)
        switch variant {
        case .screenSpot:
            let platform = Self.platform(row)
            item.category = "\(platform)/\(type)"
            item.subcategory = platform
        case .pro:
            if let application = row.text("application") { item.subcategory = application }
        }
    }

    /// `mobile`, `desktop` or `web`: a `platform` column, else SeeClick's `data_source` (iOS and
    /// Android are mobile, macOS and Windows desktop, the web sites web), else the VLMEvalKit
    /// file name (`ScreenSpot_Mobile.tsv`).
    static func platform(_ row: DatasetRow) -> String {
        if let platform = row.text("platform") { return platform.lowercased() }
        if let source = row.text("data_source")?.lowercased() {
            if ["ios", "android"].contains(source) { return "mobile" }
            if ["macos", "windows"].contains(source) { return "desktop" }
            return "web"
        }
        let name = URL(fileURLWithPath: row.file).lastPathComponent.lowercased()
        for platform in ["mobile", "desktop", "web"] where name.contains(platform) { return platform }
        return "unknown"
    }

    // MARK: Scoring

    public func extract(_ response: String, item: Item) -> Extraction {
        ClickPointParser.extract(response)
    }

    public func score(_ extraction: Extraction, item: Item) -> ItemScore {
        guard let answer = extraction.answer else { return .binary(false) }
        let point: ClickPoint
        if let stored = ClickPoint(stored: answer) {
            point = stored
        } else if case .success(let (parsed, _)) = ClickPointParser.parse(answer) {
            point = parsed  // an imported raw answer
        } else {
            return .binary(false, normalized: "no click coordinates")
        }
        guard let box = item.metadata["target_box"]?.arrayValue?.compactMap(\.numberValue), box.count == 4 else {
            return .binary(false, normalized: "item has no target box")
        }
        let width = item.metadata["image_width"]?.numberValue
        let height = item.metadata["image_height"]?.numberValue
        guard let (x, y) = point.pixels(width: width, height: height) else {
            return .binary(false, normalized: "relative point but the screenshot size is unknown")
        }
        let inside = box[0] <= x && x <= box[2] && box[1] <= y && y <= box[3]
        return .binary(inside, normalized: "pixel(\(PythonNumber.repr(x)), \(PythonNumber.repr(y)))")
    }

    public func extraMetrics(_ results: [ScoredItem]) -> [String: Double] {
        var groups: [String: (Double, Int)] = [:]
        func add(_ key: String, _ value: Double) {
            let current = groups[key] ?? (0, 0)
            groups[key] = (current.0 + value, current.1 + 1)
        }
        for result in results {
            let type = result.item.meta("element_type") ?? "unknown"
            add("type/\(type)", result.score.value)
            if variant == .pro, let group = result.item.category { add("group_type/\(group)/\(type)", result.score.value) }
            if variant == .screenSpot, let source = result.item.meta("data_source") { add("source/\(source)", result.score.value) }
        }
        var metrics = groups.mapValues { $0.0 / Double($0.1) * 100 }
        if !results.isEmpty {
            metrics["unparsed_rate"] = Double(results.filter { $0.extraction.isUnparsed }.count) / Double(results.count) * 100
        }
        return metrics
    }
}

/// The pixel size of an encoded image, read from its header without decoding it.
enum ImageSize {
    static func read(_ data: Data) -> (width: Int, height: Int)? {
        // Headers sit at the start; JPEG metadata segments can push the frame header back.
        let b = [UInt8](data.prefix(1 << 20))
        func be16(_ i: Int) -> Int { Int(b[i]) << 8 | Int(b[i + 1]) }
        func be32(_ i: Int) -> Int { Int(b[i]) << 24 | Int(b[i + 1]) << 16 | Int(b[i + 2]) << 8 | Int(b[i + 3]) }
        func le16(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
        func le24(_ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 | Int(b[i + 2]) << 16 }
        func le32(_ i: Int) -> Int { le16(i) | le16(i + 2) << 16 }
        // PNG: the IHDR chunk comes first.
        if b.count >= 24, b.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return (be32(16), be32(20)) }
        // GIF: logical screen size.
        if b.count >= 10, b.starts(with: Array("GIF".utf8)) { return (le16(6), le16(8)) }
        // BMP: BITMAPINFOHEADER (height may be negative for top-down images).
        if b.count >= 26, b.starts(with: Array("BM".utf8)) { return (le32(18), abs(Int(Int32(truncatingIfNeeded: le32(22))))) }
        // WebP: RIFF....WEBP with a VP8, VP8L or VP8X chunk.
        if b.count >= 30, b.starts(with: Array("RIFF".utf8)), Array(b[8..<12]) == Array("WEBP".utf8) {
            let chunk = String(decoding: b[12..<16], as: UTF8.self)
            switch chunk {
            case "VP8X": return (le24(24) + 1, le24(27) + 1)
            case "VP8L":
                let bits = le32(21)
                return ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
            case "VP8 ": return (le16(26) & 0x3FFF, le16(28) & 0x3FFF)
            default: return nil
            }
        }
        // JPEG: walk the markers to the first start-of-frame.
        if b.count >= 4, b[0] == 0xFF, b[1] == 0xD8 {
            var i = 2
            while i + 9 < b.count {
                guard b[i] == 0xFF else { return nil }
                let marker = b[i + 1]
                if marker == 0xFF { i += 1; continue }
                if marker == 0xD8 || marker == 0x01 || (0xD0...0xD7).contains(marker) { i += 2; continue }
                let length = be16(i + 2)
                if (0xC0...0xCF).contains(marker), ![0xC4, 0xC8, 0xCC].contains(marker) {
                    return (be16(i + 7), be16(i + 5))
                }
                i += 2 + length
            }
            return nil
        }
        return nil
    }
}
