import AssayCore

extension ScorerRegistry {
    /// Scorer plugins of the reasoning, video, agent and reward suites.
    static let reasoningVideoAgentRewardScorers: [String: Factory] = [:]
}
