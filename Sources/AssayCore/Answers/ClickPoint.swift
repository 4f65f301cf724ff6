import Foundation

/// A point a GUI-grounding model clicks, in the coordinate system it was written in.
public struct ClickPoint: Sendable, Hashable, CustomStringConvertible {
    /// How the model's numbers relate to the screenshot.
    public enum Scale: String, Sendable, Hashable {
        /// Pixels of the screenshot.
        case pixel
        /// Fractions of width and height (0–1).
        case normalized
        /// Thousandths of width and height (Qwen-VL's `<box>` and Qwen2-VL's `<|box_start|>`).
        case thousandths
    }

    public var x: Double
    public var y: Double
    public var scale: Scale

    public init(x: Double, y: Double, scale: Scale) {
        self.x = x
        self.y = y
        self.scale = scale
    }

    /// The point in pixels of a `width` × `height` screenshot; `nil` when a relative point has no
    /// size to scale by.
    public func pixels(width: Double?, height: Double?) -> (x: Double, y: Double)? {
        switch scale {
        case .pixel: return (x, y)
        case .normalized:
            guard let width, let height else { return nil }
            return (x * width, y * height)
        case .thousandths:
            guard let width, let height else { return nil }
            return (x / 1000 * width, y / 1000 * height)
        }
    }

    /// `pixel(523.5, 271)`: how an extraction stores the point (read back by `init(stored:)`).
    public var description: String {
        "\(scale.rawValue)(\(PythonNumber.repr(x)), \(PythonNumber.repr(y)))"
    }

    /// Reads a point written by `description`.
    public init?(stored text: String) {
        guard let match = Self.storedForm.firstMatch(in: text, group: 0), match == text,
              let open = text.firstIndex(of: "("),
              let scale = Scale(rawValue: String(text[..<open])) else { return nil }
        let numbers = Self.number.findAll(in: String(text[open...])).compactMap(Double.init)
        guard numbers.count == 2 else { return nil }
        self.init(x: numbers[0], y: numbers[1], scale: scale)
    }

    private static let storedForm = Pattern(#"^(?:pixel|normalized|thousandths)\(-?[0-9.e+-]+, -?[0-9.e+-]+\)$"#)
    static let number = Pattern(#"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"#)
}

/// Reads a click point from a grounding model's answer, in the common formats:
///
/// 1. `qwen_box`: `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` or `<box>(x1,y1),(x2,y2)</box>`, and
///    the one-point forms `<|box_start|>(x,y)<|box_end|>`, `<point>(x,y)</point>`: thousandths,
///    a box taken at its centre.
/// 2. `xy_keywords`: `pyautogui.click(x=0.52, y=0.31)`, `x: 523, y: 271`.
/// 3. `json_point` / `json_box`: `"point_2d": [x, y]`, `"bbox_2d": [x1, y1, x2, y2]`, `"bbox": …`.
/// 4. `box`: a bracketed list of four numbers `[x1, y1, x2, y2]` (or in parentheses), at its centre.
/// 5. `point`: a bracketed pair `(x, y)` or `[x, y]`.
///
/// The last occurrence of the first rule that fires is used (a reasoning model states its final
/// answer last). Numbers without tags are normalised when both are at most 1 and pixels
/// otherwise, as VLMEvalKit's ScreenSpot evaluation decides. No coordinates → `unparsed`.
public enum ClickPointParser {
    public static func extract(_ response: String) -> Extraction {
        switch parse(response) {
        case .success(let (point, method)): return .answer(point.description, method: method)
        case .failure(let failure): return .unparsed(reason: failure.reason)
        }
    }

    /// Why a response holds no click point.
    public struct Failure: Error, Sendable, Hashable {
        public var reason: String
    }

    public static func parse(_ response: String) -> Result<(ClickPoint, String), Failure> {
        let text = ReasoningText.stripThink(response)
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return .failure(Failure(reason: "empty response")) }
        if let numbers = lastNumbers(qwenTagged, in: text) {
            if let point = point(from: numbers, scale: .thousandths) { return .success((point, "qwen_box")) }
        }
        if let match = xyKeywords.lastGroups(in: text, count: 2), let x = Double(match[0]), let y = Double(match[1]) {
            return .success((ClickPoint(x: x, y: y, scale: autoScale(x, y)), "xy_keywords"))
        }
        if let numbers = lastNumbers(jsonPoint, in: text), let point = point(from: numbers, scale: nil) {
            return .success((point, "json_point"))
        }
        if let numbers = lastNumbers(jsonBox, in: text), let point = point(from: numbers, scale: nil) {
            return .success((point, "json_box"))
        }
        if let numbers = lastNumbers(fourNumbers, in: text), let point = point(from: numbers, scale: nil) {
            return .success((point, "box"))
        }
        if let numbers = lastNumbers(twoNumbers, in: text), let point = point(from: numbers, scale: nil) {
            return .success((point, "point"))
        }
        return .failure(Failure(reason: "no click coordinates"))
    }

    // MARK: - Rules

    private static let num = #"-?\d+(?:\.\d+)?"#
    private static let qwenTagged = Pattern(
        #"(?:<\|box_start\|>|<box>|<point>|<\|point_start\|>)\s*([^<]*?)\s*(?:<\|box_end\|>|</box>|</point>|<\|point_end\|>)"#)
    private static let xyKeywords = Pattern(
        #"(?<![A-Za-z_])x\s*[=:]\s*(\#(num))\s*[,;]?\s*(?<![A-Za-z_])y\s*[=:]\s*(\#(num))"#)
    private static let jsonPoint = Pattern(#"["']?(?:point_2d|point|click_point|coordinate|coordinates)["']?\s*[:=]\s*(\[[^\]]*\]|\([^)]*\))"#)
    private static let jsonBox = Pattern(#"["']?(?:bbox_2d|bbox|box|bounding_box)["']?\s*[:=]\s*(\[[^\]]*\]|\([^)]*\))"#)
    private static let fourNumbers = Pattern(
        #"[\[(]\s*(\#(num)\s*,\s*\#(num)\s*,\s*\#(num)\s*,\s*\#(num))\s*[\])]"#)
    private static let twoNumbers = Pattern(#"[\[(]\s*(\#(num)\s*,\s*\#(num))\s*[\])]"#)

    /// The numbers inside the last match of `pattern`'s group 1.
    private static func lastNumbers(_ pattern: Pattern, in text: String) -> [Double]? {
        guard let group = pattern.lastMatch(in: text, group: 1) else { return nil }
        let numbers = ClickPoint.number.findAll(in: group).compactMap(Double.init)
        return numbers.isEmpty ? nil : numbers
    }

    /// Two numbers are a point, four a box (its centre); a fixed scale, or the automatic one.
    private static func point(from numbers: [Double], scale: ClickPoint.Scale?) -> ClickPoint? {
        let x: Double, y: Double
        switch numbers.count {
        case 2: (x, y) = (numbers[0], numbers[1])
        case 4: (x, y) = ((numbers[0] + numbers[2]) / 2, (numbers[1] + numbers[3]) / 2)
        default: return nil
        }
        return ClickPoint(x: x, y: y, scale: scale ?? autoScale(x, y))
    }

    /// VLMEvalKit's rule: a coordinate above 1 means pixels, otherwise fractions.
    static func autoScale(_ x: Double, _ y: Double) -> ClickPoint.Scale {
        x > 1 || y > 1 ? .pixel : .normalized
    }
}

extension Pattern {
    /// Groups 1…`count` of the last match, or `nil` when there is no match.
    public func lastGroups(in text: String, count: Int) -> [String]? {
        var groups: [String] = []
        for index in 1...count {
            guard let value = lastMatch(in: text, group: index) else { return nil }
            groups.append(value)
        }
        return groups
    }
}
