import Foundation

/// How video items are turned into images: how many frames, and which ffmpeg to run. This is the
/// configuration point behind a sweep's `--frames N`; the default of 8 frames matches
/// VLMEvalKit's `*_8frame` video settings.
public struct VideoSampling: Sendable, Hashable {
    /// Frames per video, taken uniformly inside the video (see `FrameSampler.timestamps`).
    public var frames: Int
    /// When set, frames are scaled down so their longer side is at most this many pixels
    /// (keeps memory bounded for long sweeps); `nil` keeps the video's resolution.
    public var maxSide: Int?
    /// `ffmpeg` and `ffprobe`: a path, or a name looked up on `PATH`.
    public var ffmpeg: String
    public var ffprobe: String

    public init(frames: Int = 8, maxSide: Int? = nil, ffmpeg: String = "ffmpeg", ffprobe: String = "ffprobe") {
        self.frames = frames
        self.maxSide = maxSide
        self.ffmpeg = ffmpeg
        self.ffprobe = ffprobe
    }
}

/// One sampled frame: JPEG bytes and where in the video it was taken.
public struct SampledFrame: Sendable, Hashable {
    /// Seconds from the start of the video; `nil` for a frame picked from a folder of images.
    public var timestamp: Double?
    /// Position of the frame among the files of a frame folder (for folders only).
    public var frameIndex: Int?
    public var data: Data
}

/// Why frames could not be taken from a video.
public enum VideoError: Error, CustomStringConvertible, Equatable {
    /// `ffmpeg`/`ffprobe` is not installed (Debian package `ffmpeg`).
    case toolNotFound(String, searched: [String])
    /// The file is missing.
    case missing(path: String)
    /// ffprobe or ffmpeg could not read the file; `reason` is their error output.
    case unreadable(path: String, reason: String)
    /// A frame folder without image files.
    case noFrames(path: String)
    case invalidFrameCount(Int)

    public var description: String {
        switch self {
        case .toolNotFound(let tool, let searched):
            return "\(tool) not found (looked in \(searched.joined(separator: ", "))); install the Debian package 'ffmpeg'"
        case .missing(let path): return "video not found: \(path)"
        case .unreadable(let path, let reason):
            return "ffmpeg cannot read video \(path): \(reason.isEmpty ? "no error output" : reason)"
        case .noFrames(let path): return "frame folder \(path) holds no image files"
        case .invalidFrameCount(let n): return "frames per video must be at least 1, not \(n)"
        }
    }
}

/// Takes frames out of a video with ffmpeg (run through `Foundation.Process`), or out of a folder
/// of frame images.
public struct FrameSampler: Sendable {
    public let sampling: VideoSampling

    public init(sampling: VideoSampling = VideoSampling()) {
        self.sampling = sampling
    }

    /// VLMEvalKit's uniform sampling without the two ends: frame `i` of `n` (1-based) sits at
    /// `duration · i / (n + 1)`, the time of its frame index `int(i · frames / (n + 1))`.
    public static func timestamps(duration: Double, count: Int) -> [Double] {
        guard count > 0, duration > 0 else { return [] }
        return (1...count).map { duration * Double($0) / Double(count + 1) }
    }

    /// `np.linspace(0, n - 1, count, dtype=int)`: evenly spaced indices including both ends, as
    /// MM-RLHF picks frames from a frame folder.
    public static func folderIndices(fileCount: Int, count: Int) -> [Int] {
        guard fileCount > 0, count > 0 else { return [] }
        if count == 1 { return [0] }
        let step = Double(fileCount - 1) / Double(count - 1)
        return (0..<count).map { Int((Double($0) * step).rounded(.towardZero)) }
    }

    /// Frames of a video file, or of a folder holding one image per frame.
    public func sample(_ url: URL) throws -> [SampledFrame] {
        guard sampling.frames >= 1 else { throw VideoError.invalidFrameCount(sampling.frames) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw VideoError.missing(path: url.path)
        }
        if isDirectory.boolValue { return try sampleFolder(url) }
        let duration = try probeDuration(url)
        let ffmpeg = try Self.locate(sampling.ffmpeg)
        return try Self.timestamps(duration: duration, count: sampling.frames).map { time in
            var arguments = ["-nostdin", "-v", "error", "-ss", String(format: "%.3f", time), "-i", url.path, "-frames:v", "1"]
            if let maxSide = sampling.maxSide, maxSide > 0 {
                arguments += ["-vf", "scale='min(\(maxSide),iw)':'min(\(maxSide),ih)':force_original_aspect_ratio=decrease"]
            }
            arguments += ["-f", "image2pipe", "-c:v", "mjpeg", "-q:v", "2", "-"]
            let result = try Self.run(ffmpeg, arguments)
            guard result.status == 0, !result.stdout.isEmpty else {
                throw VideoError.unreadable(path: url.path, reason: Self.summary(result.stderr, status: result.status))
            }
            return SampledFrame(timestamp: time, frameIndex: nil, data: result.stdout)
        }
    }

    /// The container's duration in seconds, read with ffprobe.
    public func probeDuration(_ url: URL) throws -> Double {
        let ffprobe = try Self.locate(sampling.ffprobe)
        let result = try Self.run(ffprobe, [
            "-v", "error", "-show_entries", "format=duration", "-of", "default=noprint_wrappers=1:nokey=1", url.path,
        ])
        let text = String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, let duration = Double(text), duration.isFinite, duration > 0 else {
            let reason = result.status == 0 ? "no duration in the container (ffprobe printed '\(text)')"
                : Self.summary(result.stderr, status: result.status)
            throw VideoError.unreadable(path: url.path, reason: reason)
        }
        return duration
    }

    private func sampleFolder(_ url: URL) throws -> [SampledFrame] {
        let extensions: Set<String> = ["jpg", "jpeg", "png", "webp", "bmp"]
        let files = try FileManager.default.contentsOfDirectory(atPath: url.path)
            .filter { extensions.contains(($0 as NSString).pathExtension.lowercased()) }
            .sorted()
        guard !files.isEmpty else { throw VideoError.noFrames(path: url.path) }
        return try Self.folderIndices(fileCount: files.count, count: sampling.frames).map { index in
            let path = url.appendingPathComponent(files[index]).path
            guard let data = FileManager.default.contents(atPath: path) else { throw VideoError.missing(path: path) }
            return SampledFrame(timestamp: nil, frameIndex: index, data: data)
        }
    }

    // MARK: - Processes

    /// Finds an executable: a path as given, or the first match on `PATH`.
    static func locate(_ tool: String) throws -> URL {
        let fileManager = FileManager.default
        if tool.contains("/") {
            guard fileManager.isExecutableFile(atPath: tool) else { throw VideoError.toolNotFound(tool, searched: [tool]) }
            return URL(fileURLWithPath: tool)
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
        for directory in directories {
            let candidate = (directory as NSString).appendingPathComponent(tool)
            if fileManager.isExecutableFile(atPath: candidate) { return URL(fileURLWithPath: candidate) }
        }
        throw VideoError.toolNotFound(tool, searched: directories)
    }

    /// Runs a tool to completion. Standard error goes to a temporary file rather than a pipe so a
    /// chatty decoder cannot fill the pipe and block while we wait on standard output.
    static func run(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, stdout: Data, stderr: Data) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let output = Pipe()
        let errorURL = FileManager.default.temporaryDirectory.appendingPathComponent("assay-ffmpeg-\(UUID().uuidString).log")
        guard FileManager.default.createFile(atPath: errorURL.path, contents: nil) else {
            throw VideoError.unreadable(path: executable.path, reason: "cannot create \(errorURL.path)")
        }
        defer { try? FileManager.default.removeItem(at: errorURL) }
        let errorHandle = try FileHandle(forWritingTo: errorURL)
        defer { try? errorHandle.close() }
        process.standardOutput = output
        process.standardError = errorHandle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stderr = FileManager.default.contents(atPath: errorURL.path) ?? Data()
        return (process.terminationStatus, stdout, stderr)
    }

    /// The last lines of a tool's error output (the first ones are often just banners).
    static func summary(_ stderr: Data, status: Int32) -> String {
        let lines = String(decoding: stderr, as: UTF8.self).split(whereSeparator: \.isNewline).map(String.init)
        let tail = lines.suffix(3).joined(separator: " | ")
        return tail.isEmpty ? "exit status \(status)" : tail
    }
}
