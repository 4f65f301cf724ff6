/// Removes secrets from text before it is stored, printed or reused: the values of known keys
/// wherever they appear, and the user-info (`user:password@`) of every URL in the text.
///
/// A server may echo request headers in an error body or even in an answer, and a user may put a
/// password in `--base-url`; messages built from either end up in the database and the report.
public enum Redaction {
    public static let marker = "[redacted]"

    /// `text` with each secret (of at least 4 characters, so a stray "a" cannot blank the text)
    /// and every URL user-info replaced by `[redacted]`.
    public static func scrub(_ text: String, secrets: [String] = []) -> String {
        var result = userInfo(in: text)
        for secret in secrets where secret.count >= 4 && result.contains(secret) {
            result = result.replacingOccurrences(of: secret, with: marker)
        }
        return result
    }

    /// `text` with the user-info of every `scheme://user:password@host` replaced by `[redacted]`.
    public static func userInfo(in text: String) -> String {
        guard text.contains("://"), text.contains("@") else { return text }
        var scalars = Array(text.unicodeScalars)
        var output = String.UnicodeScalarView()
        var i = 0
        while i < scalars.count {
            // At "://", the authority runs to the next "/", "?", "#", whitespace or quote.
            if i + 2 < scalars.count, scalars[i] == ":", scalars[i + 1] == "/", scalars[i + 2] == "/" {
                output.append(contentsOf: scalars[i...(i + 2)])
                let start = i + 3
                var end = start
                while end < scalars.count, !Self.endsAuthority(scalars[end]) { end += 1 }
                if let at = scalars[start..<end].lastIndex(of: "@") {
                    output.append(contentsOf: marker.unicodeScalars)
                    output.append(contentsOf: scalars[at..<end])
                } else {
                    output.append(contentsOf: scalars[start..<end])
                }
                i = end
                continue
            }
            output.append(scalars[i])
            i += 1
        }
        scalars = []
        return String(output)
    }

    private static func endsAuthority(_ c: Unicode.Scalar) -> Bool {
        c == "/" || c == "?" || c == "#" || c == "\"" || c == "'" || c == "<" || c == ">" || c.properties.isWhitespace
    }
}
