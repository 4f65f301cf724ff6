/// The row order llama.cpp's converter gives `attn_q` / `attn_k` weights, and the way back.
///
/// Hugging Face Llama checkpoints apply RoPE with `rotate_half`, pairing dimension i with i + D/2
/// inside each head of D rows. llama.cpp's "normal" RoPE pairs adjacent dimensions (2i, 2i+1), so
/// `convert_hf_to_gguf.py` permutes the Q and K rows within every head to make the two agree:
/// Hugging Face row `j·D/2 + i` is stored as GGUF row `2i + j` (i < D/2, j ∈ {0, 1}).
///
/// A runtime that keeps GGUF rows as stored must use adjacent-pair RoPE; one that shares code with
/// safetensors checkpoints can un-permute with `huggingFaceRow(forGGUFRow:)` and use rotate-half.
/// Only Q and K are permuted (V, the output projection and the MLP are not); the number of heads
/// is the tensor's (query heads for Q, KV heads for K), and it does not appear here because the
/// mapping acts within each head of `headDim` rows.
public struct LlamaRotaryOrder: Sendable, Equatable {
    /// Rows per head (the head dimension).
    public let headDim: Int

    /// `headDim` must be positive and even (RoPE pairs dimensions).
    public init?(headDim: Int) {
        guard headDim > 0, headDim % 2 == 0 else { return nil }
        self.headDim = headDim
    }

    /// The Hugging Face (rotate-half) row that GGUF row `row` holds.
    public func huggingFaceRow(forGGUFRow row: Int) -> Int {
        let (head, r) = row.quotientAndRemainder(dividingBy: headDim)
        let i = r / 2, j = r % 2
        return head * headDim + j * (headDim / 2) + i
    }

    /// The GGUF row that holds Hugging Face row `row`.
    public func ggufRow(forHuggingFaceRow row: Int) -> Int {
        let (head, r) = row.quotientAndRemainder(dividingBy: headDim)
        let j = r / (headDim / 2), i = r % (headDim / 2)
        return head * headDim + 2 * i + j
    }

    /// For each Hugging Face row h of a tensor with `rows` rows, the GGUF row to read:
    /// `hf[h] = gguf[permutation[h]]`. Empty when `rows` is not a whole number of heads.
    public func ggufRowsInHuggingFaceOrder(rows: Int) -> [Int] {
        guard rows >= 0, rows % headDim == 0 else { return [] }
        return (0..<rows).map { ggufRow(forHuggingFaceRow: $0) }
    }
}
