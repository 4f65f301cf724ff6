import ArgumentParser
import AssaySuites
import Foundation

struct SuitesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suites", abstract: "Inspect the suite catalog.", subcommands: [List.self, SuitesShowCommand.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the built-in and user suites.")

        @OptionGroup var suites: SuiteOptions
        @Flag(help: "Print JSON instead of a table.") var json = false

        struct Entry: Encodable {
            var id, title, group, split, metric, scorer, headline: String
            var version: Int
            var expected_items: Int?
            var source: SuiteManifest.DataSource?
            var directory: String?
        }

        func run() throws {
            let catalog = try suites.catalog()
            let entries = catalog.ids.compactMap { catalog.suites[$0] }.map { suite in
                let m = suite.manifest
                return Entry(id: m.id, title: m.title, group: m.group, split: m.split, metric: m.metric, scorer: m.scorer,
                             headline: m.headline.rawValue, version: m.version, expected_items: m.expectedItems,
                             source: m.source, directory: m.directory)
            }
            if json { return try JSONOutput.print(entries) }
            print("id".padding(toLength: 22, withPad: " ", startingAt: 0) + "group".padding(toLength: 12, withPad: " ", startingAt: 0)
                + "split".padding(toLength: 12, withPad: " ", startingAt: 0) + "items".padding(toLength: 7, withPad: " ", startingAt: 0) + "metric")
            for e in entries {
                print(e.id.padding(toLength: 22, withPad: " ", startingAt: 0) + e.group.padding(toLength: 12, withPad: " ", startingAt: 0)
                    + e.split.padding(toLength: 12, withPad: " ", startingAt: 0)
                    + (e.expected_items.map(String.init) ?? "?").padding(toLength: 7, withPad: " ", startingAt: 0) + e.metric)
            }
        }
    }
}
