import ArgumentParser
import AssayStore
import AssaySuites
import Foundation

/// `--db`: the SQLite database every command reads and writes.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "SQLite database (created if missing).")
    var db: String = "Results/assay.sqlite"

    func open() throws -> Store { try Store(path: db) }
}

/// `--suites-dir`: folders of user suites, in addition to the built-in Suites/.
struct SuiteOptions: ParsableArguments {
    @Option(name: .customLong("suites-dir"), help: "A folder of user suites (<id>/suite.yaml); repeatable.")
    var suitesDirs: [String] = []

    func catalog() throws -> SuiteCatalog {
        let builtIn = try SuiteCatalog.locateBuiltIn(executable: Bundle.main.executableURL)
        return try SuiteCatalog.load(builtIn: builtIn, userDirectories: suitesDirs.map { URL(fileURLWithPath: $0) })
    }
}

/// `--resamples` and `--seed` of the paired bootstrap.
struct BootstrapOptions: ParsableArguments {
    @Option(help: "Bootstrap resamples.") var resamples = 10_000
    @Option(help: "Bootstrap seed (the same seed gives the same intervals).") var seed: UInt64 = 0
}

/// Prints an Encodable value as JSON on stdout.
enum JSONOutput {
    static func print<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let data = try encoder.encode(value)
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }
}

/// Writes a line to stderr (progress and notes, keeping stdout for results).
func note(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
