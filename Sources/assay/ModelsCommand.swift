import ArgumentParser
import AssayEngine
import Foundation

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models", abstract: "Models Assay can fetch without a model hub.", subcommands: [List.self, Pull.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List known models and whether they are in the cache.")
        func run() throws {
            for model in ModelCache.known {
                let path = try ModelCache.path(for: model.id)
                let here = FileManager.default.fileExists(atPath: path.path)
                print("\(model.id)\t\(model.summary)\t\(here ? path.path : "not pulled")")
            }
        }
    }

    struct Pull: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fetch a known model into the cache ($ASSAY_MODEL_DIR or ~/.cache/assay/models) and verify its SHA-256.")
        @Argument(help: "Model id (see `assay models list`).") var id: String = ModelCache.defaultModel
        func run() throws {
            let url = try ModelCache.pull(id, log: note)
            print(url.path)
        }
    }
}
