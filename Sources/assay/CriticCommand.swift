import ArgumentParser
import AssayCore
import AssayTraining
import Foundation

/// `assay critic …`: critic data for GRPO.
struct CriticCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "critic", abstract: "Critic data for GRPO (LLaVA-Critic-R1 recipe).", subcommands: [CriticBuildCommand.self])
}

struct CriticBuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Write verifiable critic RL prompts (which of two responses is better, answered \\boxed{1} or \\boxed{2}) from runs or preference data.",
        discussion: """
            --from-runs pairs, for every item of the runs' suites, each response scored correct with each one scored \
            wrong (all samples of all the runs). --from-preference reads JSON Lines rows with question, response_1, \
            response_2, preferred (1 or 2) and optional image/images paths. The folder holds train.jsonl and \
            test.jsonl (EasyR1's problem/answer/images columns plus metadata), images/ and manifest.json; the two \
            orders are balanced with the seed and the held-out split is by item.
            """)

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var suiteOptions: SuiteOptions
    @Option(help: "Output folder (replaced when it exists).") var out: String
    @Option(name: .customLong("from-runs"), help: "Runs to mine, comma-separated.") var fromRuns: String?
    @Option(name: .customLong("from-preference"), help: "A JSON Lines file of pairwise preferences.") var fromPreference: String?
    @Option(help: "Only these suites of the runs, comma-separated.") var suites: String?
    @Option(name: .customLong("data-dir"), help: "Folder of downloaded datasets (for the images of suites whose recorded dataset path is gone).")
    var dataDir: String?
    @Option(help: "At most this many pairs (a seeded choice).") var limit: Int?
    @Option(help: "Seed of the order balance, the choice under --limit and the split.") var seed: UInt64 = 0
    @Option(name: .customLong("test-fraction"), help: "Share of items held out for the test split.") var testFraction = 0.1

    func validate() throws {
        guard (fromRuns == nil) != (fromPreference == nil) else { throw ValidationError("give --from-runs or --from-preference (one of them)") }
        guard testFraction.isFinite, testFraction >= 0, testFraction < 1 else { throw ValidationError("--test-fraction must be in [0, 1)") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        var summary = CriticBuildSummary()
        let pairs: [CriticPair]
        if let fromRuns {
            let names = fromRuns.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let store = try database.openExisting()
            pairs = try CriticDataBuilder.pairs(
                fromRuns: names, store: store, catalog: try suiteOptions.catalog(remembering: names, in: store),
                suites: suites.map { Set($0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }) },
                dataDirectory: dataDir.map { URL(fileURLWithPath: $0) }, summary: &summary)
        } else {
            pairs = try CriticDataBuilder.pairs(fromPreferenceFile: URL(fileURLWithPath: fromPreference ?? ""))
        }
        let url = URL(fileURLWithPath: out)
        try CriticDataBuilder.write(pairs, to: url, seed: seed, testFraction: testFraction, limit: limit, summary: &summary)
        print("wrote \(summary.train + summary.test) critic prompts to \(url.path): train \(summary.train), test \(summary.test)")
        print("pairs per suite: " + summary.pairsBySuite.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        print("order: better response first \(summary.betterFirst), second \(summary.betterSecond)")
        if !summary.dropped.isEmpty {
            print("dropped: " + summary.dropped.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
    }
}

/// `assay train …`: the embedded GRPO core and exports for EasyR1/veRL.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "GRPO training on the embedded runtime (grpo, grpo-step), training data (data), exports for EasyR1/veRL (export).",
        subcommands: [TrainGRPOCommand.self, TrainGRPOStepCommand.self, TrainDataCommand.self, TrainExportCommand.self])
}

struct TrainExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an EasyR1 run (dataset, config with the study's hyperparameters, the critic reward, launch script) for GPUs.")

    @Option(help: "Export format (easyr1).") var format = "easyr1"
    @Option(help: "Critic data folder from `assay critic build`.") var data: String
    @Option(help: "Output folder (new or empty).") var out: String
    @Option(help: "Policy model (Hugging Face id or path).") var model = "Qwen/Qwen2.5-VL-7B-Instruct"
    @Option(help: "Learning rate.") var lr = 1e-6
    @Option(name: .customLong("group-size"), help: "Rollouts per prompt.") var groupSize = 8
    @Option(name: .customLong("kl-coef"), help: "KL coefficient (k3, in the loss).") var klCoef = 1e-2
    @Option(name: .customLong("max-response-length"), help: "Response token limit.") var maxResponseLength = 2048
    @Option(name: .customLong("format-weight"), help: "Weight of the format reward.") var formatWeight = 0.1
    @Option(help: "Epochs.") var epochs = 1

    func validate() throws {
        guard format == "easyr1" else { throw ValidationError("--format must be easyr1 (the engine the study used)") }
        guard lr.isFinite, lr > 0, klCoef.isFinite, klCoef >= 0, formatWeight.isFinite, formatWeight >= 0, formatWeight <= 1 else {
            throw ValidationError("--lr must be positive, --kl-coef non-negative and --format-weight in [0, 1]")
        }
        guard groupSize >= 2, maxResponseLength >= 1, epochs >= 1 else {
            throw ValidationError("--group-size must be at least 2 (GRPO compares within a group), --max-response-length and --epochs at least 1")
        }
    }

    func run() throws {
        var h = EasyR1Export.Hyperparameters()
        h.model = model
        h.learningRate = lr
        h.rolloutN = groupSize
        h.klCoef = klCoef
        h.maxResponseLength = maxResponseLength
        h.formatWeight = formatWeight
        h.epochs = epochs
        let url = URL(fileURLWithPath: out)
        try EasyR1Export.write(dataDirectory: URL(fileURLWithPath: data), out: url, hyperparameters: h)
        print("wrote \(EasyR1Export.files.map { url.appendingPathComponent($0).path }.joined(separator: "\n      "))")
        print("run it from an EasyR1 checkout: bash \(url.appendingPathComponent("launch.sh").path)")
    }
}
