import AssayCore

extension ScorerRegistry {
    /// Scorer plugins of the reasoning, video, agent and reward suites.
    static let reasoningVideoAgentRewardScorers: [String: Factory] = [
        "mathvision": { _ in MathVisionScorer() },
        "mathverse": { _ in MathVerseScorer() },
        "emma": { _ in EMMAScorer() },
        "logicvista": { _ in LogicVistaScorer() },
        "videommmu": { _ in VideoMMMUScorer() },
        "videomme": { _ in VideoMMEScorer() },
        "screenspot": { _ in ScreenSpotScorer(variant: .screenSpot) },
        "screenspot_pro": { _ in ScreenSpotScorer(variant: .pro) },
        "vl_rewardbench": { _ in PairwisePreferenceScorer(benchmark: .vlRewardBench) },
        "mm_rewardbench": { _ in PairwisePreferenceScorer(benchmark: .multimodalRewardBench) },
        "mm_rlhf_rewardbench": { _ in PairwisePreferenceScorer(benchmark: .mmRLHF) },
        "critic_pairs": { _ in PairwisePreferenceScorer(benchmark: .criticPairs) },
    ]
}
