import AssayCore
import AssaySuites
import Foundation

/// Training rows of a generated task for `assay train grpo --reward suite`, none of them asking a
/// question the task's evaluation suite asks.
public enum GeneratedTrainingData {
    public struct Summary: Sendable {
        public var written = 0
        /// Draws dropped because the suite has the same question.
        public var excluded = 0
        public var distinct = 0
    }

    /// Distinct questions, in the generator's order, until `count` are written or the draws run out.
    public static func write(task: String, count: Int, seed: UInt64, excluding heldOut: [Item], to path: String) throws -> Summary {
        guard task == "arithmetic" else { throw TrainingDataError.unreadable(file: task, reason: "no training generator for this task (arithmetic has one)") }
        guard count >= 1 else { throw TrainingDataError.unreadable(file: path, reason: "--count must be at least 1") }
        let forbidden = Set(heldOut.map(\.question))
        var seen = Set<String>()
        var summary = Summary()
        var lines = ""
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Twenty draws per row is far more than the question space needs; the loop stops early.
        for loaded in ArithmeticGenerator.items(count: count * 20, seed: seed) {
            let item = loaded.item
            if forbidden.contains(item.question) { summary.excluded += 1; continue }
            guard seen.insert(item.question).inserted else { continue }
            let row = ["problem": item.question, "answer": item.answer, "suite": task, "item_id": "train-\(summary.written)",
                       "category": item.category ?? ""]
            lines += String(decoding: try encoder.encode(row), as: UTF8.self) + "\n"
            summary.written += 1
            if summary.written == count { break }
        }
        summary.distinct = seen.count
        let temp = path + ".tmp-\(getpid())"
        try Data(lines.utf8).write(to: URL(fileURLWithPath: temp))
        guard rename(temp, path) == 0 else { throw TrainingDataError.unreadable(file: path, reason: String(cString: strerror(errno))) }
        return summary
    }
}
