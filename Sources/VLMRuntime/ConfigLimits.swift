/// Bounds on every size a checkpoint declares, checked before the size is used for anything.
///
/// A config or GGUF file is untrusted input: an overflowing `mrope_section`, a negative
/// `head_dim` or a `head_dim` of 2×10⁹ used to trap (SIGILL) or allocate gigabytes before any
/// check ran. Each bound is several times what any released model uses (Llama 3.1 405B: hidden
/// 16,384, 126 layers, 128 heads, head_dim 128; Gemma: vocabulary 262,144; Qwen2.5-VL: vision
/// width 1,280, depth 32), so a real checkpoint never meets one.
public enum ConfigLimits {
    public static let hiddenSize = 1 << 17
    public static let intermediateSize = 1 << 19
    public static let layers = 1 << 12
    public static let heads = 1 << 12
    public static let headDim = 1 << 12
    public static let vocabulary = 1 << 23
    /// Context length (max_position_embeddings, GGUF context_length).
    public static let positions = 1 << 26
    public static let visionDepth = 1 << 10
    public static let patchSize = 1 << 10
    public static let smallFactor = 64
    /// Elements of one weight matrix or cache (≈ 4 TB of f32: no CPU machine has it, and the
    /// products below it cannot overflow an Int).
    public static let elements = 1 << 40
    /// Pixels per image after preprocessing (min_pixels / max_pixels): 64 MP, eight 4K frames.
    public static let pixels = 1 << 26
    /// Tokens a special-token id or a declared token id may name.
    public static let tokenID = 1 << 31

    /// `value` if it lies in `range`; otherwise an error naming `file` and `key`.
    @discardableResult
    public static func check(_ value: Int, _ range: ClosedRange<Int>, key: String, file: String) throws -> Int {
        guard range.contains(value) else {
            throw ConfigError.invalidValue(file: file, key: key, reason: "\(value) is outside \(range.lowerBound)…\(range.upperBound)")
        }
        return value
    }

    /// `a · b · …` if it neither overflows nor exceeds `elements`; otherwise an error naming the keys.
    @discardableResult
    public static func product(_ factors: [Int], keys: String, file: String, limit: Int = elements) throws -> Int {
        var result = 1
        for factor in factors {
            guard factor >= 0 else {
                throw ConfigError.invalidValue(file: file, key: keys, reason: "negative factor \(factor)")
            }
            let (p, overflow) = result.multipliedReportingOverflow(by: factor)
            guard !overflow, p <= limit else {
                throw ConfigError.invalidValue(file: file, key: keys, reason: "\(factors.map(String.init).joined(separator: " × ")) exceeds \(limit)")
            }
            result = p
        }
        return result
    }
}
