import ArgumentParser
import AssayStore
import Foundation

/// `assay runs list`: what a database holds, without sqlite3.
struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs", abstract: "Inspect the runs a database holds.", subcommands: [List.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List runs: name, model, backend, suites, items answered, created, status.")

        @OptionGroup var database: DatabaseOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() throws {
            let summaries = try database.openExisting().runSummaries()
            if json { return try JSONOutput.print(summaries) }
            if summaries.isEmpty {
                print("no runs in \(database.db)")
                return
            }
            let rows = [["name", "model", "backend", "suites", "n", "created", "status"]] + summaries.map {
                [$0.name, $0.model, $0.backend, $0.suites.joined(separator: ","), "\($0.n)/\($0.items)", $0.createdAt, $0.status]
            }
            print(Table.render(rows))
        }
    }
}

/// Plain-text columns padded to their widest cell (the last column is not padded).
enum Table {
    static func render(_ rows: [[String]]) -> String {
        let count = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
