import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class VideoSuitesTests: XCTestCase {
    // MARK: - Frame sampling

    func testUniformTimestampsLeaveOutBothEnds() {
        XCTAssertEqual(FrameSampler.timestamps(duration: 9, count: 8), [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(FrameSampler.timestamps(duration: 10, count: 1), [5])
        XCTAssertEqual(FrameSampler.timestamps(duration: 0, count: 8), [])
        XCTAssertEqual(FrameSampler.folderIndices(fileCount: 10, count: 4), [0, 3, 6, 9])
        XCTAssertEqual(FrameSampler.folderIndices(fileCount: 3, count: 5), [0, 0, 1, 1, 2])
    }

    func testSamplesFramesFromAGeneratedVideo() throws {
        let directory = try Fixtures.temporaryDirectory(for: self)
        let video = directory.appendingPathComponent("clip.mp4")
        try SuiteFiles.makeVideo(at: video, test: self)
        let frames = try FrameSampler(sampling: VideoSampling(frames: 8)).sample(video)
        XCTAssertEqual(frames.count, 8)
        let times = frames.compactMap(\.timestamp)
        XCTAssertEqual(times.count, 8)
        for (time, expected) in zip(times, FrameSampler.timestamps(duration: 2, count: 8)) {
            XCTAssertEqual(time, expected, accuracy: 0.05)
        }
        for frame in frames {
            XCTAssertEqual(Array(frame.data.prefix(2)), [0xFF, 0xD8], "frames are JPEG")
            XCTAssertEqual(ImageSize.read(frame.data).map { [$0.width, $0.height] }, [64, 48])
        }
        XCTAssertGreaterThan(Set(frames.map(\.data)).count, 1, "the test pattern moves, so frames differ")
        let scaled = try FrameSampler(sampling: VideoSampling(frames: 2, maxSide: 32)).sample(video)
        XCTAssertEqual(ImageSize.read(scaled[0].data).map { [$0.width, $0.height] }, [32, 24])
    }

    func testFramesFromAFolderOfImages() throws {
        let folder = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("frames")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for index in 0..<10 {
            try SuiteFiles.png(width: 10 + index, height: 10).write(to: folder.appendingPathComponent(String(format: "%03d.png", index)))
        }
        let frames = try FrameSampler(sampling: VideoSampling(frames: 4)).sample(folder)
        XCTAssertEqual(frames.map(\.frameIndex), [0, 3, 6, 9])
        XCTAssertEqual(frames.compactMap { ImageSize.read($0.data)?.width }, [10, 13, 16, 19])
    }

    func testUnreadableVideoIsAClearError() throws {
        let directory = try Fixtures.temporaryDirectory(for: self)
        _ = try XCTUnwrap(try? FrameSampler.locate("ffprobe"), "ffprobe is part of the ffmpeg package")
        let broken = directory.appendingPathComponent("broken.mp4")
        try Data("this is not a video".utf8).write(to: broken)
        XCTAssertThrowsError(try FrameSampler().sample(broken)) { error in
            guard case VideoError.unreadable(let path, let reason) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(path, broken.path)
            XCTAssertFalse(reason.isEmpty)
            XCTAssertTrue("\(error)".contains("ffmpeg cannot read video"))
        }
        XCTAssertThrowsError(try FrameSampler().sample(directory.appendingPathComponent("absent.mp4"))) { error in
            XCTAssertEqual(error as? VideoError, .missing(path: directory.appendingPathComponent("absent.mp4").path))
        }
        XCTAssertThrowsError(try FrameSampler(sampling: VideoSampling(ffmpeg: "/nonexistent/ffmpeg", ffprobe: "/nonexistent/ffprobe")).sample(broken)) { error in
            guard case VideoError.toolNotFound = error else { return XCTFail("\(error)") }
        }
        // Through the suite: the dataset file, its line and the item are named.
        let suite = try SuiteFiles.suite("videomme")
        let url = directory.appendingPathComponent("Video-MME.tsv")
        try SuiteFiles.writeTSV(videoMMEHeader, [videoMMERow(index: "0", path: "./broken.mp4")], to: url)
        SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(suite, url) }, file: url.path, line: 2,
                                      mentioning: ["item '0'", "ffmpeg cannot read video", "broken.mp4"])
    }

    // MARK: - Video-MME

    let videoMMEHeader = ["index", "video", "video_path", "duration", "domain", "candidates", "sub_category", "task_type", "subtitle_path", "question", "answer"]

    func videoMMERow(index: String, path: String) -> [String] {
        [index, "001", path, "short", "Knowledge", "['A. Apples.', 'B. Candles.', 'C. Berries.', 'D. The three kinds are of the same number.']",
         "Humanity & History", "Counting Problem", "./subtitle/001.srt",
         "When demonstrating the Germany modern Christmas tree is initially decorated with apples, candles and berries, which kind of the decoration has the largest number?", "C"]
    }

    func testVideoMMEItemsGetFramesAndTheOfficialPrompt() throws {
        let directory = try Fixtures.temporaryDirectory(for: self)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("video"), withIntermediateDirectories: true)
        try SuiteFiles.makeVideo(at: directory.appendingPathComponent("video/001.mp4"), test: self)
        let suite = try SuiteFiles.suite("videomme")
        let url = directory.appendingPathComponent("Video-MME.tsv")
        try SuiteFiles.writeTSV(videoMMEHeader, [videoMMERow(index: "0", path: "./video/001.mp4"), videoMMERow(index: "1", path: "./video/001.mp4")], to: url)
        let items = try SuiteFiles.load(suite, url)
        XCTAssertEqual(items[0].item.images.count, 8)
        XCTAssertEqual(items[0].imageData.count, 8)
        XCTAssertEqual(items[0].item.metadata["frame_timestamps"]?.arrayValue?.count, 8)
        XCTAssertEqual(items[1].item.images, items[0].item.images, "one video, sampled once, same frames")
        XCTAssertEqual(items[0].item.category, "short")
        XCTAssertEqual(items[0].item.subcategory, "Counting Problem")
        XCTAssertEqual(items[0].item.optionLabels, ["A", "B", "C", "D"])
        assertSnapshot(SuiteFiles.render(suite.render(items[0].item)), named: "videomme-prompt")
        // The frame count is a configuration point (`--frames N`).
        XCTAssertEqual(try SuiteFiles.load(suite, url, video: VideoSampling(frames: 3))[0].item.images.count, 3)
        // An import only hashes: no ffmpeg run, no frames.
        XCTAssertEqual(try SuiteFiles.load(suite, url, images: .hashOnly)[0].item.images.count, 0)
    }

    /// The responses of Video-MME's published `output_test_template.json`, and common shapes.
    func testVideoMMEExtractionFollowsTheOfficialRegex() {
        let scorer = VideoMMEScorer()
        let item = Item(id: "q", answers: ["C"])
        let cases: [(String, String?)] = [
            ("C. Berries.", "C"),
            ("D.", "D"),
            ("D. 3", "D"),
            ("Answer: C. Jade.", "C"),
            ("D", "D"),
            ("D. 13", "D"),
            ("B", "B"),
            ("C.", "C"),
            ("D. United States.", "D"),
            ("The best answer is: B", "B"),
            ("<think>A or B</think>\\boxed{A}", "A"),
            ("I cannot determine this from the frames provided, sorry about that friend.", nil),
            // The official rule takes the first capital A-D: "Based" gives B. Kept as the authors define it.
            ("Based on the video, the answer is C.", "B"),
        ]
        for (response, expected) in cases {
            XCTAssertEqual(scorer.extract(response, item: item).answer, expected, response)
        }
        XCTAssertTrue(scorer.score(scorer.extract("C. Berries.", item: item), item: item).correct == true)
    }

    // MARK: - Video-MMMU

    func testVideoMMMUItemsGetFramesThenTheQuestionImage() throws {
        let directory = try Fixtures.temporaryDirectory(for: self)
        for folder in ["videos/Science", "images"] {
            try FileManager.default.createDirectory(at: directory.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        try SuiteFiles.makeVideo(at: directory.appendingPathComponent("videos/Science/adaptation_Physics_1.mp4"), test: self)
        try SuiteFiles.png(width: 30, height: 20).write(to: directory.appendingPathComponent("images/adaptation_Physics_1.png"))
        let suite = try SuiteFiles.suite("videommmu")
        let url = directory.appendingPathComponent("VideoMMMU.tsv")
        try SuiteFiles.writeTSV(
            ["index", "id", "category", "question", "options", "answer", "question_type", "video", "image"],
            [["0", "perception_Physics_1", "Perception", "What is the unit of the quantity written on the board?",
              "[\"kg\", \"m/s\", \"N\", \"J\"]", "C", "multiple-choice", "videos/Science/adaptation_Physics_1.mp4", ""],
             ["1", "adaptation_Physics_1", "Adaptation", "<image 1> A ball is thrown upward at 10 m/s. How many seconds until it stops rising? (g = 10 m/s^2)",
              "[]", "1", "open", "videos/Science/adaptation_Physics_1.mp4", "images/adaptation_Physics_1.png"]],
            to: url)
        let items = try SuiteFiles.load(suite, url, video: VideoSampling(frames: 4))
        XCTAssertEqual(items.map { $0.item.images.count }, [4, 5])
        XCTAssertEqual(items[1].item.images.last?.origin.hasSuffix("images/adaptation_Physics_1.png"), true)
        XCTAssertEqual(items[0].item.optionLabels, ["A", "B", "C", "D"])
        assertSnapshot(items.map { SuiteFiles.render(suite.render($0.item)) }.joined(separator: "---\n"), named: "videommmu-prompt")
    }

    /// Real MMMU-style responses (Qwen-VL's answers in MMMU's example outputs), read with the
    /// Video-MMMU variant of the MMMU multiple-choice rules after the last "Answer:".
    func testVideoMMMUMultipleChoiceExtraction() {
        let scorer = VideoMMMUScorer()
        func item(_ options: [String]) -> Item {
            Item(id: "q", options: options.enumerated().map { AnswerOption(label: ["A", "B", "C", "D", "E"][$0.offset], text: $0.element) },
                 answers: ["A"], metadata: ["question_type": "multiple-choice"])
        }
        let economics = item(["0", "700", "1400", "3418"])
        let cases: [(String, Item, String?)] = [
            ("The answer is (A) A price below that of 1.30 dollars would cause a situation of excess demand and hence a surplus.",
             item(["A price below that of 1.30 dollars would cause a situation of excess demand and hence a surplus.", "A price below that of 1.30 dollars would cause a situation of excess demand and hence a shortage.", "Not certain."]), "A"),
            ("(C) 2410", item(["2510", "2500", "2410"]), "C"),
            ("(B) excess demand.", item(["excess supply", "excess demand", "both", "neither"]), "B"),
            // More than five words and no letter: the option text decides.
            ("The figure illustrates a Phillips curve.", item(["demand curve", "Phillips curve", "production possibilities frontier", "aggregate supply curve", "Lorenz curve"]), "B"),
            ("(B) Structural unemployment decreased.", item(["Structural unemployment remained the same.", "Structural unemployment decreased.", "Structural unemployment increased."]), "B"),
            ("The economy can return to the long-run equilibrium if it faces a boom and if wages are flexible by option (A) Wages will fall.", item(["Wages will fall.", "Wages will rise.", "Wages will remain unchanged."]), "A"),
            ("Let me think step by step.\nAnswer: B", economics, "B"),
            ("Answer: D. 3418", economics, "D"),
            ("Answer: C: 1400", economics, "C"),
            ("After watching the lecture, I believe the money supply does not change at all, so zero.", economics, nil),
            ("I think B is right.\nAnswer: 700 is not it, it is A", economics, "A"),
        ]
        for (response, question, expected) in cases {
            XCTAssertEqual(scorer.extract(response, item: question).answer, expected, response)
        }
    }

    func testVideoMMMUOpenAnswersUseMMMUNormalisation() {
        let scorer = VideoMMMUScorer()
        let item = Item(id: "o", answers: ["8"], metadata: ["question_type": "open"])
        XCTAssertFalse(scorer.score(scorer.extract("The equilibrium price in this country is 2 bagels.", item: item), item: item).correct == true)
        XCTAssertTrue(scorer.score(scorer.extract("The price rises until it equals 8 dollars.\nAnswer: 8.00", item: item), item: item).correct == true)
        let text = Item(id: "t", answers: ["photosynthesis"], metadata: ["question_type": "open"])
        XCTAssertTrue(scorer.score(scorer.extract("Answer: Photosynthesis", item: text), item: text).correct == true)
    }

    func testVideoSuitesWithWrongColumnsNameFileAndLine() throws {
        let directory = try Fixtures.temporaryDirectory(for: self)
        for (id, header) in [("videomme", ["index", "question", "answer"]), ("videommmu", ["index", "question", "options", "answer"])] {
            let suite = try SuiteFiles.suite(id)
            let url = directory.appendingPathComponent("\(id).tsv")
            try SuiteFiles.writeTSV(header, [header.map { _ in "x" }], to: url)
            SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(suite, url) }, file: url.path, line: 1, mentioning: ["missing required column", id])
        }
    }
}
