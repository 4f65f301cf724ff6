import ArgumentParser
import AssayCore
import AssayEngine
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
            for id in ids {
                let suite = try catalog.suite(id)
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
}
