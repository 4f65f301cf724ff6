import ArgumentParser

// Temporary root for the runtime branch; on main, Assay.swift lists `runtimeCommands`.
struct AssayRuntimeRoot: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "assay", subcommands: runtimeCommands)
}

AssayRuntimeRoot.main()
