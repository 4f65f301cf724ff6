/// The Qwen2 split step, written out by hand instead of going through a regex engine:
///
///     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
///
/// Llama 3's split is the same with `\p{N}{1,3}` (digits in runs of up to three): `maxDigits`.
///
/// Each alternative is tried in order at the current position, with the backtracking the regex
/// engine would do, and the pieces are returned "isolated" (every character belongs to a piece).
enum Qwen2PreTokenizer {
    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// Oniguruma's Unicode `\s`: the White_Space property.
    static func isSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    static func isNewline(_ s: Unicode.Scalar) -> Bool { s == "\r" || s == "\n" }

    /// Splits `text` into pieces (as scalar ranges).
    static func split(_ scalars: [Unicode.Scalar], maxDigits: Int = 1) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        var i = 0
        let n = scalars.count
        while i < n {
            let end = matchAt(scalars, i, maxDigits: maxDigits)
            pieces.append(i..<end)
            i = end
        }
        return pieces
    }

    /// End of the match starting at `i` (always > i).
    static func matchAt(_ s: [Unicode.Scalar], _ i: Int, maxDigits: Int = 1) -> Int {
        let n = s.count
        let c = s[i]
        // 1. contractions, case-insensitive
        if c == "'" && i + 1 < n {
            let a = lower(s[i + 1])
            if a == "s" || a == "t" || a == "m" || a == "d" { return i + 2 }
            if i + 2 < n {
                let b = lower(s[i + 2])
                if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return i + 3 }
            }
        }
        // 2. [^\r\n\p{L}\p{N}]?\p{L}+
        if isLetter(c) {
            var j = i + 1
            while j < n && isLetter(s[j]) { j += 1 }
            return j
        }
        if !isNewline(c) && !isNumber(c) && i + 1 < n && isLetter(s[i + 1]) {
            var j = i + 2
            while j < n && isLetter(s[j]) { j += 1 }
            return j
        }
        // 3. \p{N} (\p{N}{1,maxDigits})
        if isNumber(c) {
            var j = i + 1
            while j < n && j - i < maxDigits && isNumber(s[j]) { j += 1 }
            return j
        }
        // 4.  ?[^\s\p{L}\p{N}]+[\r\n]*
        do {
            var j = i
            if s[j] == " " { j += 1 }
            let start = j
            while j < n && !isSpace(s[j]) && !isLetter(s[j]) && !isNumber(s[j]) { j += 1 }
            if j > start {
                while j < n && isNewline(s[j]) { j += 1 }
                return j
            }
        }
        // 5. \s*[\r\n]+  → up to and including the last newline of the whitespace run
        var e = i
        while e < n && isSpace(s[e]) { e += 1 }
        if e > i {
            var lastNewline = -1
            for j in i..<e where isNewline(s[j]) { lastNewline = j }
            if lastNewline >= 0 { return lastNewline + 1 }
            // 6. \s+(?!\S): the run, minus its last character when a non-space follows
            if e == n { return e }
            if e - 1 > i { return e - 1 }
            // 7. \s+
            return e
        }
        // A character none of the alternatives take (cannot happen: every scalar is a letter,
        // number, space or "other"); keep it as its own piece.
        return i + 1
    }

    @inline(__always)
    static func lower(_ s: Unicode.Scalar) -> Unicode.Scalar {
        if s.value >= 0x41 && s.value <= 0x5A { return Unicode.Scalar(s.value + 32)! } // invariant: ASCII letters
        return s
    }
}
