import AssayCore
import Foundation

/// The scorer plugins by the name a suite's YAML uses.
public enum ScorerRegistry {
    static let factories: [String: @Sendable (SuiteManifest) -> any SuiteScorer] = [
        "multiple_choice": { _ in MultipleChoiceScorer() },
        "yes_no": { _ in YesNoScorer() },
        "blink": { _ in BLINKScorer() },
        "mmmu": { _ in MMMUScorer() },
        "mathvista": { _ in MathVistaScorer() },
    ]

    public static var names: [String] { factories.keys.sorted() }

    public static func scorer(for manifest: SuiteManifest) throws -> any SuiteScorer {
        guard let factory = factories[manifest.scorer] else {
            throw SuiteError.unknownScorer(manifest.scorer, suite: manifest.id)
        }
        return factory(manifest)
    }
}
