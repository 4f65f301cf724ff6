import Foundation

/// Average Normalized Levenshtein Similarity (Biten et al., ICCV 2019), the metric of DocVQA and
/// InfographicsVQA, as the official evaluation script of the RRC site computes it (VLMEvalKit's
/// `anls_compute` is a copy of it):
///
/// - both strings are lower-cased, stripped, and their inner whitespace runs collapsed to one
///   space before the edit distance is taken;
/// - the distance is divided by the longer of the two strings *as given* (before that
///   normalisation, measured in code points of their upper-case form), which is the script's
///   behaviour and is kept so that scores agree with it to the last digit;
/// - a question scores 1 − the smallest normalised distance over its gold answers, and 0 when
///   that similarity is below the threshold (0.5).
public enum ANLS {
    /// The official threshold τ: a similarity below it scores 0.
    public static let threshold = 0.5

    /// The question's score in 0…1 for `prediction` against any of `answers`.
    public static func score(prediction: String, answers: [String], threshold: Double = ANLS.threshold) -> Double {
        guard !answers.isEmpty else { return 0 }
        let distances = answers.map { normalizedDistance($0, prediction) }
        let similarity = 1 - (distances.min() ?? 1)
        return similarity < threshold ? 0 : similarity
    }

    /// The normalised edit distance between one gold answer and the prediction.
    public static func normalizedDistance(_ groundTruth: String, _ prediction: String) -> Double {
        let gold = collapse(groundTruth)
        let detected = collapse(prediction)
        let distance = TextMatching.levenshtein(gold, detected)
        let length = max(groundTruth.uppercased().unicodeScalars.count, prediction.uppercased().unicodeScalars.count)
        return length == 0 ? 0 : Double(distance) / Double(length)
    }

    /// `' '.join(s.strip().lower().split())`.
    static func collapse(_ text: String) -> String {
        TextMatching.words(text.lowercased()).joined(separator: " ")
    }
}
