import AssayCore
import AssayStore
import AssaySuites
import Foundation

/// A run's suite read again from its dataset, for the image bytes the store does not keep (the
/// critic's prompts, critic data).
public enum RunDataset {
    /// The suite's items with their image bytes: generated again for generated suites, else read
    /// from the dataset path the run recorded (or, when that file is gone, the data folder), and
    /// checked against the run's dataset checksum.
    public static func loadItems(suite: Suite, registration: SuiteRegistration, dataDirectory: URL?) throws -> [LoadedItem] {
        var dataset: URL?
        if !registration.datasetPath.hasPrefix("generated:") {
            dataset = URL(fileURLWithPath: registration.datasetPath)
            if !FileManager.default.fileExists(atPath: registration.datasetPath), let dataDirectory {
                dataset = try DataFetch(directory: dataDirectory).localDataset(for: suite)
            }
        }
        let (items, sha256, path) = try SweepSuite(suite: suite, dataset: dataset).load(images: .keep, video: VideoSampling())
        guard sha256 == registration.datasetSHA256 else {
            throw StoreError.datasetMismatch(run: "the run's dataset (\(path))", suite: suite.id,
                                             existing: registration.datasetSHA256, requested: sha256)
        }
        return items
    }
}
