import AssayCore
import Foundation

/// The offline `arithmetic` suite's items: text-only questions with one exact integer answer
/// (sums and differences of numbers up to 20, products of one-digit numbers), drawn
/// from a seed. It is the verifiable task small text models are trained and measured on here
/// (GRPO, Best-of-N): hard enough that SmolLM2-135M gets some wrong, easy enough that it gets
/// some right, and scored by the answer alone however the model words it.
public enum ArithmeticGenerator {
    public static let version = 1

    public enum Operation: String, CaseIterable, Sendable {
        case addition, subtraction, multiplication

        var symbol: String {
            switch self {
            case .addition: return "+"
            case .subtraction: return "-"
            case .multiplication: return "×"
            }
        }
    }

    /// `count` items, the operations taking turns, fully determined by `seed`.
    public static func items(count: Int, seed: UInt64) -> [LoadedItem] {
        var g = SeededGenerator(seed: seed ^ 0xA417_0000)
        return (0..<max(count, 0)).map { index in
            let operation = Operation.allCases[index % Operation.allCases.count]
            let a: Int, b: Int, answer: Int
            switch operation {
            case .addition:
                a = 1 + g.nextIndex(below: 20)
                b = 1 + g.nextIndex(below: 20)
                answer = a + b
            case .subtraction:
                let x = 1 + g.nextIndex(below: 20), y = 1 + g.nextIndex(below: 20)
                (a, b) = (max(x, y), min(x, y))
                answer = a - b
            case .multiplication:
                a = 2 + g.nextIndex(below: 8)
                b = 2 + g.nextIndex(below: 8)
                answer = a * b
            }
            let id = String(format: "arithmetic-%04d", index)
            let item = Item(
                id: id, question: "What is \(a) \(operation.symbol) \(b)?", answers: [String(answer)],
                category: operation.rawValue)
            return LoadedItem(item: item, imageData: [])
        }
    }

    /// A checksum of the generated questions and answers, recorded like a dataset file's.
    public static func checksum(_ items: [LoadedItem]) -> String {
        var hasher = SHA256()
        hasher.update("arithmetic-v\(version)")
        for loaded in items {
            hasher.update([loaded.item.id, loaded.item.question, loaded.item.answer].joined(separator: "\u{1}"))
        }
        return hasher.finalize().hexString
    }
}
