import ArgumentParser
import AssayCore
import AssayEngine
import AssaySuites
import Foundation

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Download and verify suites' datasets.", subcommands: [Fetch.self])

    struct Fetch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download the datasets the suites' YAML names, check their MD5, resume partial downloads.",
            discussion: "A file already in the folder is verified and kept, so a folder of existing files works offline.")

        @OptionGroup var suites: SuiteOptions
        @Argument(help: "Suite ids.") var ids: [String]
        @Option(name: .customLong("data-dir"), help: "Folder for datasets (default: $ASSAY_DATA_DIR or the user cache).")
        var dataDir: String?

        func run() async throws {
            let catalog = try suites.catalog()
            let fetch = DataFetch(directory: dataDir.map { URL(fileURLWithPath: $0) } ?? DataFetch.defaultDirectory())
            // Unknown ids stop everything before any download; a failed download does not stop the others.
            let chosen = try ids.map { try catalog.suite($0) }
            var failed: [String] = []
            for suite in chosen {
                do {
                    try await fetchOne(suite, fetch: fetch)
                } catch {
                    failed.append(suite.id)
                    note("\(suite.id): \(error)")
                    if let instructions = fetch.manualInstructions(for: suite) { note("\(suite.id): \(instructions)") }
                }
            }
            if !failed.isEmpty {
                note("not fetched: \(failed.joined(separator: ", ")) (\(chosen.count - failed.count) of \(chosen.count) suites ready)")
                throw ExitCode(1)
            }
        }

        func fetchOne(_ suite: Suite, fetch: DataFetch) async throws {
            let id = suite.id
            let lastShown = Locked(Date.distantPast)
            let outcome = try await fetch.fetch(suite) { written, expected in
                let show = lastShown.withLock { last -> Bool in
                    guard Date().timeIntervalSince(last) >= 1 else { return false }
                    last = Date()
                    return true
                }
                if show {
                    let total = expected.map { " of \(ByteCountFormatter.string(fromByteCount: $0, countStyle: .file))" } ?? ""
                    note("\(id): \(ByteCountFormatter.string(fromByteCount: written, countStyle: .file))\(total)")
                }
            }
            switch outcome {
            case .present(let url): print("\(id): \(url.path) (already there, MD5 verified)")
            case .downloaded(let url, let bytes, let resumedFrom):
                print("\(id): \(url.path) (\(bytes) bytes\(resumedFrom > 0 ? ", resumed at \(resumedFrom)" : ""), MD5 verified)")
            }
        }
    }
}
