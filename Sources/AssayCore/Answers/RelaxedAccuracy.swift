import Foundation

/// ChartQA's relaxed accuracy (Masry et al., 2022, after Methani et al., 2020), as
/// `pix2struct/metrics.py:relaxed_correctness` implements it and VLMEvalKit and lmms-eval copy it:
/// a prediction that reads as a number is right when it lies within 5% of a non-zero numeric
/// target; anything else needs a case-insensitive exact match.
///
/// "Reads as a number" is Python's `float()` after an optional trailing `%` (which divides by 100,
/// on either side). Thousands separators, currency signs and units are *not* removed, and a target
/// of 0 falls back to the string comparison: those are the reference implementation's rules, and
/// `NumericMatch.relaxedEqual` (which is more lenient) would score differently.
public enum RelaxedAccuracy {
    /// The reference tolerance: 5% of the target.
    public static let maxRelativeChange = 0.05

    public static func isCorrect(target: String, prediction: String, maxRelativeChange: Double = RelaxedAccuracy.maxRelativeChange) -> Bool {
        if let predicted = toFloat(prediction), let gold = toFloat(target), gold != 0 {
            return abs(predicted - gold) / abs(gold) <= maxRelativeChange
        }
        // Code-point equality, as Python compares strings (Swift's == would also equate
        // canonically equivalent spellings).
        return prediction.lowercased().unicodeScalars.elementsEqual(target.lowercased().unicodeScalars)
    }

    /// `_to_float`: `float(text.rstrip('%')) / 100` when the text ends in `%`, else `float(text)`.
    static func toFloat(_ text: String) -> Double? {
        if text.hasSuffix("%") {
            var stripped = Substring(text)
            while stripped.last == "%" { stripped.removeLast() }
            return PythonNumber.parseFloat(String(stripped)).map { $0 / 100 }
        }
        return PythonNumber.parseFloat(text)
    }
}
