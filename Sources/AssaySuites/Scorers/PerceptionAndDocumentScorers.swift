import AssayCore

extension ScorerRegistry {
    /// Scorer plugins of the perception and chart & document suites.
    static let perceptionAndDocumentScorers: [String: Factory] = [
        "mmbench_circular": { _ in MMBenchScorer() },
        "hallusionbench": { _ in HallusionBenchScorer() },
        "mmvp": { _ in MMVPScorer() },
        "realworldqa": { _ in RealWorldQAScorer() },
        "pope": { _ in POPEScorer() },
        "chartqa": { _ in ChartQAScorer() },
        "charxiv": { _ in CharXivScorer() },
        "ocrbench": { _ in OCRBenchScorer() },
        "anls": { _ in ANLSScorer() },
    ]
}
