import ArgumentParser
import Foundation

/// The `assay` command: thin wiring from flags to the modules.
@main
struct Assay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assay",
        abstract: "Evaluate vision-language models: sweep suites, store every response in SQLite, score, compare, report.",
        version: assayVersion,
        subcommands: researcherCommands + [
            SuitesCommand.self, ImportCommand.self, ScoreCommand.self, MetricsCommand.self,
            CompareCommand.self, ReportCommand.self, ModelsCommand.self,
            SweepCommand.self, MergeCommand.self, DataCommand.self, SelectCommand.self, CriticCommand.self, TrainCommand.self,
        ] + runtimeCommands
    )
}
