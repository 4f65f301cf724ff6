import ArgumentParser
import AssayStore
import AssaySuites
import Foundation

/// `--db`: the SQLite database every command reads and writes.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "SQLite database (sweep, import and merge create it; other commands need an existing one).")
    var db: String = "Results/assay.sqlite"

    /// Opens or creates the database (commands that write runs).
    func open() throws -> Store { try Store(path: db) }

    /// Opens an existing database, never creating one: read-only for commands that only read.
    func openExisting(readOnly: Bool = true) throws -> Store { try Store(existingPath: db, readOnly: readOnly) }
}

/// `--suites-dir`: folders of user suites, in addition to the built-in Suites/.
struct SuiteOptions: ParsableArguments {
    @Option(name: .customLong("suites-dir"), help: "A folder of user suites (<id>/suite.yaml); repeatable.")
    var suitesDirs: [String] = []

    func catalog() throws -> SuiteCatalog {
        try catalog(directories: suitesDirs)
    }

    func catalog(directories: [String]) throws -> SuiteCatalog {
        let builtIn = try SuiteCatalog.locateBuiltIn(executable: Bundle.main.executableURL)
        return try SuiteCatalog.load(builtIn: builtIn, userDirectories: directories.map { URL(fileURLWithPath: $0) })
    }

    /// Runs `body`, turning an unknown suite (a run's user suite whose folder was not given or
    /// recorded) into an error naming the runs, the database and the flag that fixes it.
    func explainingUnknownSuites<T>(runs: [String], database: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch SuiteError.unknownSuite(let id, _) {
            let runs = runs.map { "'\($0)'" }.joined(separator: ", ")
            throw ValidationError("run \(runs) in \(database) holds suite '\(id)', which is neither built in nor in "
                + (suitesDirs.isEmpty ? "a --suites-dir the run recorded" : suitesDirs.joined(separator: ", "))
                + ": pass the folder that defines it with --suites-dir")
        }
    }

    /// The folders as absolute paths, as they are recorded with a run.
    var absoluteDirectories: [String] {
        suitesDirs.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    }

    /// The catalog with the given `--suite-dir` flags, or else with the folders the runs recorded
    /// (`import`/`sweep --suites-dir`), so a run's user suites are found without repeating the flag.
    /// A recorded folder that is gone is skipped with a note; its suites then fail by name.
    func catalog(remembering runs: [String], in store: Store) throws -> SuiteCatalog {
        guard suitesDirs.isEmpty else { return try catalog() }
        var directories: [String] = []
        for name in runs {
            guard let run = try store.run(named: name) else { continue }
            for directory in run.suitesDirectories where !directories.contains(directory) {
                if FileManager.default.fileExists(atPath: directory) {
                    directories.append(directory)
                } else {
                    note("run '\(name)' was made with --suites-dir \(directory), which no longer exists")
                }
            }
        }
        return try catalog(directories: directories)
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
