import ArgumentParser
import AssayCore
import AssayEngine
import AssaySuites
import Foundation

/// `assay suites show ID`: a suite's manifest, columns, protocol and the prompt one item gets.
struct SuitesShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show a suite: its manifest, required columns, metric and protocol, and the rendered prompt of a sample item.",
        discussion: """
            The sample item is generated for suites whose items Assay draws itself (sanity); for the others it is \
            the first row of the fetched dataset (or of --data FILE), or a note saying how to fetch it.
            """)

    @OptionGroup var suites: SuiteOptions
    @Argument(help: "Suite id.") var id: String
    @Option(name: .customLong("data-dir"), help: "Folder of downloaded datasets (default: $ASSAY_DATA_DIR or the user cache).")
    var dataDir: String?
    @Option(help: "Dataset file to take the sample row from, instead of the data folder.") var data: String?

    func run() throws {
        let suite = try suites.catalog().suite(id)
        let m = suite.manifest
        print("\(m.id): \(m.title) (group \(m.group), split \(m.split), version \(m.version))")
        if let directory = m.directory {
            let file = URL(fileURLWithPath: directory).appendingPathComponent("suite.yaml")
            print("manifest: \(file.path)")
        }
        if let source = m.source {
            var parts = [source.format]
            if let name = source.name { parts.append(name) }
            if let url = source.url { parts.append(url) }
            if let md5 = source.md5 { parts.append("MD5 \(md5)") }
            if let count = source.count { parts.append("\(count) items, seed \(source.seed ?? 0)") }
            print("source: " + parts.joined(separator: ", "))
        }
        print("expected items: \(m.expectedItems.map(String.init) ?? "not stated")")
        print("required columns: \(m.columns.required.joined(separator: ", "))")
        if !m.filter.isEmpty {
            print("row filter: " + m.filter.sorted { $0.key < $1.key }.map { "\($0.key) = \($0.value)" }.joined(separator: ", "))
        }
        print("answer format: \(m.answerFormat.rawValue)")
        print("metric: \(m.metric)")
        let headline = m.headline == .macroMean ? "macro mean over \(m.stratum ?? "?")" : "mean over items"
        print("protocol: headline \(headline); scorer \(suite.scorerVersion); prompt version \(suite.promptVersion); images \(m.prompt.images ?? "before") the text; "
            + (m.judge.map { "judge step: \($0.task) v\($0.version) for responses the rules cannot read" } ?? "no judge step (rules only)"))
        if !m.reference.isEmpty {
            print("published: " + m.reference.map { "\($0.model) \(String(format: "%.1f", $0.score))" }.joined(separator: ", "))
        }
        if let system = m.prompt.system, !system.isEmpty { print("system prompt:\n" + indent(system)) }
        print("prompt template:\n" + indent(m.prompt.template))

        switch try sample(suite) {
        case .item(let item, let origin):
            print("sample item \(item.id) (\(origin)); gold answer: \(item.answers.joined(separator: " | "))")
            for message in suite.render(item) {
                print("rendered \(message.role.rawValue) message:\n" + indent(message.renderedText))
            }
        case .unavailable(let why):
            print("sample item: none — \(why)")
        }
    }

    enum Sample {
        case item(Item, origin: String)
        case unavailable(String)
    }

    /// A generated item, the first item of the dataset, or why there is none. A dataset that
    /// fails to load is reported, not thrown: the rest of what `show` prints is still useful.
    func sample(_ suite: Suite) throws -> Sample {
        if let generated = try suite.generatedItems(count: 1), let first = generated.items.first {
            return .item(first.item, origin: "generated")
        }
        let file: URL
        if let data {
            file = URL(fileURLWithPath: data)
        } else {
            let fetch = DataFetch(directory: dataDir.map { URL(fileURLWithPath: $0) } ?? DataFetch.defaultDirectory())
            guard let expected = try? fetch.file(for: suite) else {
                return .unavailable("the suite names no download; pass a dataset with --data FILE")
            }
            guard FileManager.default.fileExists(atPath: expected.path) else {
                return .unavailable("the dataset is not fetched (expected at \(expected.path)); run `assay data fetch \(suite.id)` or pass --data FILE")
            }
            file = expected
        }
        do {
            let dataset = try DatasetFile.read(file)
            // A handful of rows is enough for one item; hashing every image of a large TSV is not.
            let head = DatasetFile(url: dataset.url, rows: Array(dataset.rows.prefix(20)), columns: dataset.columns, sha256: dataset.sha256)
            guard let first = try suite.loadItems(from: head, images: .hashOnly).first else {
                return .unavailable("\(file.path) has no row this suite keeps")
            }
            return .item(first.item, origin: "first item of \(file.path)")
        } catch {
            return .unavailable("\(file.path) could not be read: \(error)")
        }
    }

    func indent(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
    }
}
