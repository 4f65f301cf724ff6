import AssayCore
import Foundation

/// The offline `sanity` suite's items: pictures Assay draws itself from a seed, with multiple-choice
/// questions whose answers are exact (count the shapes, name the colour, which is bigger, where is
/// the shape, which shape is it). A working VLM should score near 100%; a model that cannot see
/// scores near chance (about 27% over the five tasks: four options, or two for "bigger").
public enum SanityGenerator {
    public static let version = 1
    public static let imageSize = 224

    public enum Task: String, CaseIterable, Sendable {
        case count, colour, bigger, position, shape
    }

    /// `count` items, the tasks taking turns, fully determined by `seed`.
    public static func items(count: Int, seed: UInt64) throws -> [LoadedItem] {
        var generator = SeededGenerator(seed: seed)
        var items: [LoadedItem] = []
        items.reserveCapacity(count)
        for index in 0..<max(count, 0) {
            let task = Task.allCases[index % Task.allCases.count]
            items.append(try make(task, index: index, using: &generator))
        }
        return items
    }

    /// A checksum of what the generator produced (questions, answers and image bytes), recorded
    /// like a dataset file's.
    public static func checksum(_ items: [LoadedItem]) -> String {
        var hasher = SHA256()
        hasher.update("sanity-v\(version)")
        for loaded in items {
            hasher.update([loaded.item.id, loaded.item.question, loaded.item.answer].joined(separator: "\u{1}"))
            hasher.update(loaded.item.options.map(\.text).joined(separator: "\u{1}"))
            for image in loaded.item.images { hasher.update(image.sha256) }
        }
        return hasher.finalize().hexString
    }

    // MARK: - Tasks

    private static func make(_ task: Task, index: Int, using g: inout SeededGenerator) throws -> LoadedItem {
        var shapes: [SanityShape] = []
        let question: String
        var optionTexts: [String]
        let answer: String
        let size = Double(imageSize)
        func randomKind() -> SanityShape.Kind { SanityShape.Kind.allCases[g.nextIndex(below: SanityShape.Kind.allCases.count)] }
        func randomColor() -> SanityColor { SanityColor.allCases[g.nextIndex(below: SanityColor.allCases.count)] }
        func jitter(_ amount: Double) -> Double { (g.nextUnit() * 2 - 1) * amount }

        switch task {
        case .count:
            let n = 1 + g.nextIndex(below: 6)
            var cells = Array(0..<9)
            shuffle(&cells, &g)
            let cell = size / 3
            for c in cells.prefix(n) {
                let radius = 16 + g.nextUnit() * 10
                shapes.append(SanityShape(kind: randomKind(), color: randomColor(),
                                          cx: (Double(c % 3) + 0.5) * cell + jitter(cell / 2 - radius - 2),
                                          cy: (Double(c / 3) + 0.5) * cell + jitter(cell / 2 - radius - 2), radius: radius))
            }
            question = "How many shapes are in the image?"
            var numbers = Set([n])
            while numbers.count < 4 { numbers.insert(1 + g.nextIndex(below: 8)) }
            optionTexts = numbers.sorted().map(String.init)
            answer = String(n)
        case .colour:
            let color = randomColor()
            shapes.append(SanityShape(kind: randomKind(), color: color, cx: size / 2 + jitter(40), cy: size / 2 + jitter(40), radius: 40 + jitter(12)))
            question = "What colour is the shape in the image?"
            var others = SanityColor.allCases.filter { $0 != color }.map(\.rawValue)
            shuffle(&others, &g)
            optionTexts = [color.rawValue] + others.prefix(3)
            shuffle(&optionTexts, &g)
            answer = color.rawValue
        case .bigger:
            var kinds = SanityShape.Kind.allCases
            shuffle(&kinds, &g)
            var colors = SanityColor.allCases
            shuffle(&colors, &g)
            let large = 48 + jitter(6), small = 20 + jitter(4)
            let bigFirst = g.nextIndex(below: 2) == 0
            let radii = bigFirst ? [large, small] : [small, large]
            for i in 0..<2 {
                shapes.append(SanityShape(kind: kinds[i], color: colors[i], cx: size * (i == 0 ? 0.28 : 0.72),
                                          cy: size / 2 + jitter(30), radius: radii[i]))
            }
            question = "Which shape is bigger?"
            optionTexts = shapes.map { "the \($0.color.rawValue) \($0.kind.rawValue)" }
            answer = optionTexts[bigFirst ? 0 : 1]
        case .position:
            let quadrant = g.nextIndex(below: 4)
            let names = ["top left", "top right", "bottom left", "bottom right"]
            shapes.append(SanityShape(kind: randomKind(), color: randomColor(),
                                      cx: size * (quadrant % 2 == 0 ? 0.25 : 0.75) + jitter(12),
                                      cy: size * (quadrant < 2 ? 0.25 : 0.75) + jitter(12), radius: 26 + jitter(6)))
            question = "Where is the shape in the image?"
            optionTexts = names
            answer = names[quadrant]
        case .shape:
            let kind = randomKind()
            shapes.append(SanityShape(kind: kind, color: randomColor(), cx: size / 2 + jitter(30), cy: size / 2 + jitter(30), radius: 50 + jitter(10)))
            question = "Which shape is shown in the image?"
            optionTexts = SanityShape.Kind.allCases.map(\.rawValue)
            answer = kind.rawValue
        }

        var canvas = Canvas(width: imageSize, height: imageSize)
        for shape in shapes {
            canvas.fill(shape.kind, cx: shape.cx, cy: shape.cy, radius: shape.radius, color: shape.color.rgb)
        }
        let png = try PNGWriter.encode(width: imageSize, height: imageSize, rgb: canvas.pixels)
        let labels = ["A", "B", "C", "D"]
        let options = optionTexts.enumerated().map { AnswerOption(label: labels[$0.offset], text: $0.element) }
        // invariant: the answer is one of the option texts by construction.
        let letter = options.first { $0.text == answer }!.label
        let id = String(format: "sanity-%04d", index)
        let item = Item(
            id: id, question: question, options: options, answers: [letter], category: task.rawValue,
            images: [ImageRef(sha256: SHA256.hex(png), byteCount: png.count, origin: "sanity:\(id)")],
            metadata: ["answer_text": .string(answer)])
        return LoadedItem(item: item, imageData: [png])
    }

    private static func shuffle<T>(_ array: inout [T], _ g: inout SeededGenerator) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            array.swapAt(i, g.nextIndex(below: i + 1))
        }
    }
}
