import Foundation

/// A compiled regular expression with the few operations the answer rules need, with Python `re`
/// semantics where they differ from ICU's defaults (only the ones the rules rely on).
public struct Pattern: @unchecked Sendable {
    // NSRegularExpression is immutable and documented as thread-safe.
    private let regex: NSRegularExpression

    /// Compiles a pattern that is part of the program. A malformed literal is a programming error
    /// caught by the tests, so it falls back to a pattern that matches nothing instead of trapping.
    public init(_ pattern: String, caseInsensitive: Bool = false) {
        var options: NSRegularExpression.Options = []
        if caseInsensitive { options.insert(.caseInsensitive) }
        if let regex = try? NSRegularExpression(pattern: pattern, options: options) {
            self.regex = regex
        } else {
            // invariant: literals are checked by PatternTests; "(?!)" never matches.
            self.regex = try! NSRegularExpression(pattern: "(?!)") // invariant: constant pattern
        }
    }

    /// Compiles a user-supplied pattern (suite YAML), reporting a malformed one.
    public init(validating pattern: String, caseInsensitive: Bool = false) throws {
        var options: NSRegularExpression.Options = []
        if caseInsensitive { options.insert(.caseInsensitive) }
        self.regex = try NSRegularExpression(pattern: pattern, options: options)
    }

    private func results(in text: String) -> [NSTextCheckingResult] {
        regex.matches(in: text, range: NSRange(text.startIndex..., in: text))
    }

    private func substring(_ text: String, _ range: NSRange) -> String? {
        guard range.location != NSNotFound, let r = Range(range, in: text) else { return nil }
        return String(text[r])
    }

    /// Like Python's `re.findall`: the whole match when the pattern has no group, else group 1.
    public func findAll(in text: String) -> [String] {
        results(in: text).compactMap { match in
            substring(text, match.range(at: match.numberOfRanges > 1 ? 1 : 0))
        }
    }

    /// Group `group` of the first match (`re.search(...).group(n)`).
    public func firstMatch(in text: String, group: Int = 0) -> String? {
        guard let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)),
              group < match.numberOfRanges else { return nil }
        return substring(text, match.range(at: group))
    }

    /// Group `group` of the last match.
    public func lastMatch(in text: String, group: Int = 0) -> String? {
        guard let match = results(in: text).last, group < match.numberOfRanges else { return nil }
        return substring(text, match.range(at: group))
    }

    public func matches(_ text: String) -> Bool {
        regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    /// True when the pattern matches the whole string.
    public func matchesEntirely(_ text: String) -> Bool {
        guard let match = regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else { return false }
        return match.range.location == 0 && match.range.length == (text as NSString).length
    }

    /// Python's `re.split` for patterns without groups.
    public func split(_ text: String) -> [String] {
        var pieces: [String] = []
        var cursor = text.startIndex
        for match in results(in: text) {
            guard let range = Range(match.range, in: text) else { continue }
            pieces.append(String(text[cursor..<range.lowerBound]))
            cursor = range.upperBound
        }
        pieces.append(String(text[cursor...]))
        return pieces
    }

    public func replacing(in text: String, with template: String) -> String {
        regex.stringByReplacingMatches(
            in: text, range: NSRange(text.startIndex..., in: text), withTemplate: template)
    }
}
