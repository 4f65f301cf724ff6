import AssayCore

extension ScorerRegistry {
    /// Scorer plugins of the perception and chart & document suites.
    static let perceptionAndDocumentScorers: [String: Factory] = [:]
}
