/// How text is cut into pieces before byte-level BPE runs on each piece. The splits are written
/// out by hand (no regex engine), alternative by alternative with the backtracking the regex
/// would do; every character ends up in exactly one piece.
public enum PreTokenizer: Sendable, Equatable {
    /// Qwen2's split (`\p{N}` single digits); `maxDigits: 3` is Llama 3's (`\p{N}{1,3}`).
    case qwen2(maxDigits: Int)
    /// GPT-2's split: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2
    /// Every `\p{N}` character alone first, then GPT-2's split on each piece: llama.cpp's
    /// `smollm` / `starcoder` pre-tokenizer, and Hugging Face's `Digits(individual_digits)` +
    /// `ByteLevel` sequence.
    case digitsThenGPT2

    /// The pre-tokenizer llama.cpp runs for a GGUF `tokenizer.ggml.pre` name, or nil when the
    /// runtime does not implement it.
    public static func forGGUF(_ name: String?) -> PreTokenizer? {
        switch name ?? "default" {
        case "default", "gpt2", "gpt-2", "phi-2", "stablelm2", "olmo", "jais", "mpt", "poro-chat", "viking", "falcon":
            return .gpt2
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b":
            return .digitsThenGPT2
        case "qwen2", "deepseek-r1-qwen", "megrez":
            return .qwen2(maxDigits: 1)
        case "llama3", "llama-bpe", "llama-v3", "smaug-bpe", "falcon3", "pixtral", "dbrx":
            return .qwen2(maxDigits: 3)
        default:
            return nil
        }
    }

    /// Pieces of `scalars` as index ranges.
    func split(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        switch self {
        case .qwen2(let maxDigits):
            return Qwen2PreTokenizer.split(scalars, maxDigits: maxDigits)
        case .gpt2:
            return GPT2PreTokenizer.split(scalars, 0..<scalars.count)
        case .digitsThenGPT2:
            var pieces: [Range<Int>] = []
            var start = 0
            for i in scalars.indices where Qwen2PreTokenizer.isNumber(scalars[i]) {
                if start < i { pieces += GPT2PreTokenizer.split(scalars, start..<i) }
                pieces.append(i..<(i + 1))
                start = i + 1
            }
            if start < scalars.count { pieces += GPT2PreTokenizer.split(scalars, start..<scalars.count) }
            return pieces
        }
    }
}

/// GPT-2's split over a range of scalars (the pattern is in `PreTokenizer.gpt2`).
enum GPT2PreTokenizer {
    static func split(_ s: [Unicode.Scalar], _ range: Range<Int>) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var i = range.lowerBound
        while i < range.upperBound {
            let end = matchAt(s, i, range.upperBound)
            pieces.append(i..<end)
            i = end
        }
        return pieces
    }

    /// End of the match starting at `i` (always > i); `n` is the end of the text being split.
    static func matchAt(_ s: [Unicode.Scalar], _ i: Int, _ n: Int) -> Int {
        typealias P = Qwen2PreTokenizer
        let c = s[i]
        // 1. contractions, lowercase only
        if c == "'" && i + 1 < n {
            let a = s[i + 1]
            if a == "s" || a == "t" || a == "m" || a == "d" { return i + 2 }
            if i + 2 < n {
                let b = s[i + 2]
                if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return i + 3 }
            }
        }
        // 2–4. an optional space, then a run of letters, of numbers, or of other symbols
        let j = c == " " && i + 1 < n ? i + 1 : i
        let classes: [(Unicode.Scalar) -> Bool] = [P.isLetter, P.isNumber, { !P.isSpace($0) && !P.isLetter($0) && !P.isNumber($0) }]
        for inClass in classes where inClass(s[j]) {
            var e = j + 1
            while e < n && inClass(s[e]) { e += 1 }
            return e
        }
        // 5. \s+(?!\S): the whitespace run, minus its last character when a non-space follows
        var e = i
        while e < n && P.isSpace(s[e]) { e += 1 }
        if e > i {
            if e == n { return e }
            if e - 1 > i { return e - 1 }
            // 6. \s+
            return e
        }
        // Unreachable (every scalar is a space, letter, number or other); keep it alone.
        return i + 1
    }
}
