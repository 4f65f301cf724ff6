import AssayCore
import Foundation

/// The scorer plugins by the name a suite's YAML uses.
public enum ScorerRegistry {
    typealias Factory = @Sendable (SuiteManifest) -> any SuiteScorer

    static let factories: [String: Factory] = core
        .merging(perceptionAndDocumentScorers) { first, _ in first }
        .merging(reasoningVideoAgentRewardScorers) { first, _ in first }

    static let core: [String: Factory] = [
        "multiple_choice": { _ in MultipleChoiceScorer() },
        "yes_no": { _ in YesNoScorer() },
        "blink": { _ in BLINKScorer() },
        "mmmu": { _ in MMMUScorer() },
        "mathvista": { _ in MathVistaScorer() },
        "exact_number": { _ in ExactNumberScorer() },
    ]

    public static var names: [String] { factories.keys.sorted() }

    public static func scorer(for manifest: SuiteManifest) throws -> any SuiteScorer {
        guard let factory = factories[manifest.scorer] else {
            throw SuiteError.unknownScorer(manifest.scorer, suite: manifest.id)
        }
        return factory(manifest)
    }
}
