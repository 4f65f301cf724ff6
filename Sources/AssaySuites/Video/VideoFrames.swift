import AssayCore
import Foundation

/// A scorer whose items come with a video: frames are sampled from the file (or frame folder)
/// named in `videoColumn` and become the first images of the item.
public protocol VideoFrameSource: SuiteScorer {
    /// The metadata key (dataset column) holding the video's path, relative to the dataset file.
    var videoColumn: String { get }
}

/// Attaches sampled frames to loaded items.
public enum VideoFrames {
    /// Each item whose `videoColumn` is set gets `sampling.frames` frames before its own images,
    /// with their timestamps in `metadata["frame_timestamps"]` (seconds) or, for a frame folder,
    /// the picked files' positions in `metadata["frame_indices"]`. A video shared by several
    /// questions is sampled once. A video ffmpeg cannot read is a `DatasetError` naming the
    /// dataset line, the item and ffmpeg's message.
    public static func attach(
        to items: [LoadedItem], source: VideoFrameSource, datasetFile: DatasetFile, sampling: VideoSampling
    ) throws -> [LoadedItem] {
        let sampler = FrameSampler(sampling: sampling)
        let base = datasetFile.url.deletingLastPathComponent()
        var lineByIndex: [String: Int] = [:]
        for row in datasetFile.rows {
            if let index = row.text("index"), lineByIndex[index] == nil { lineByIndex[index] = row.line }
        }
        var cache: [String: [SampledFrame]] = [:]
        var result: [LoadedItem] = []
        result.reserveCapacity(items.count)
        for var loaded in items {
            guard let relative = loaded.item.meta(source.videoColumn)?.trimmingCharacters(in: .whitespaces),
                  !relative.isEmpty else {
                result.append(loaded)
                continue
            }
            let url = relative.hasPrefix("/") ? URL(fileURLWithPath: relative) : base.appendingPathComponent(relative)
            let key = url.standardizedFileURL.path
            let frames: [SampledFrame]
            if let cached = cache[key] {
                frames = cached
            } else {
                do {
                    frames = try sampler.sample(url.standardizedFileURL)
                } catch let error as VideoError {
                    throw DatasetError(file: datasetFile.url.path, line: lineByIndex[loaded.item.id],
                                       "item '\(loaded.item.id)': \(error)")
                }
                cache[key] = frames
            }
            let refs = frames.map { frame -> ImageRef in
                let position = frame.timestamp.map { String(format: "@%.3fs", $0) } ?? "#\(frame.frameIndex ?? 0)"
                return ImageRef(sha256: SHA256.hex(frame.data), byteCount: frame.data.count, origin: key + position)
            }
            loaded.item.images = refs + loaded.item.images
            loaded.imageData = frames.map(\.data) + loaded.imageData
            if frames.allSatisfy({ $0.timestamp != nil }) {
                loaded.item.metadata["frame_timestamps"] = .array(frames.compactMap(\.timestamp).map { .number($0) })
            } else {
                loaded.item.metadata["frame_indices"] = .array(frames.compactMap(\.frameIndex).map { .number(Double($0)) })
            }
            result.append(loaded)
        }
        return result
    }
}
