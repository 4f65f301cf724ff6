import ArgumentParser

/// The version `assay --version` prints: the one place it is written.
let assayVersion = "0.16.0"

/// Commands for looking at what a database holds; the root command lists them.
let researcherCommands: [any ParsableCommand.Type] = [RunsCommand.self, ResponsesCommand.self]
