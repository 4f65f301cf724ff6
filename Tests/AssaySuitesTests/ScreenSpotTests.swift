import AssayCore
@testable import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

final class ScreenSpotTests: XCTestCase {
    /// A 1000 × 500 screenshot with the target at x 100–200, y 50–100 (SeeClick's x, y, w, h).
    func screenSpotFile() throws -> (Suite, [LoadedItem]) {
        let suite = try SuiteFiles.suite("screenspot")
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("ScreenSpot_Mobile.tsv")
        let image = SuiteFiles.png(width: 1000, height: 500).base64EncodedString()
        try SuiteFiles.writeTSV(
            ["index", "question", "bbox", "data_type", "data_source", "image"],
            [["0", "view the details of the item", "[100, 50, 100, 50]", "text", "shop", image],
             ["1", "view the previous photo", "[93, 74, 86, 132]", "icon", "iOS", "0"]],
            to: url)
        return (suite, try SuiteFiles.load(suite, url))
    }

    func testItemsCarryBoxSizeAndPlatformTypeCell() throws {
        let (_, items) = try screenSpotFile()
        XCTAssertEqual(items[0].item.metadata["target_box"], .array([.number(100), .number(50), .number(200), .number(100)]))
        XCTAssertEqual(items[0].item.metadata["image_width"], .number(1000))
        // The second row shares the first row's image by index; its size is read all the same.
        XCTAssertEqual(items[1].item.metadata["image_height"], .number(500))
        XCTAssertEqual(items.map(\.item.category), ["web/text", "mobile/icon"])
        XCTAssertEqual(items.map(\.item.subcategory), ["web", "mobile"])
    }

    func testRenderedPromptMatchesSnapshot() throws {
        let (suite, items) = try screenSpotFile()
        assertSnapshot(SuiteFiles.render(suite.render(items[0].item)), named: "screenspot-prompt")
    }

    /// The answer formats grounding models use (pyautogui calls as VLMEvalKit asks, SeeClick's
    /// normalised point, Qwen-VL and Qwen2-VL boxes in thousandths, Qwen2.5-VL JSON, plain boxes).
    func testClickPointsFromCommonAnswerFormats() throws {
        let cases: [(String, ClickPoint, String)] = [
            ("pyautogui.click(x=150, y=75)", ClickPoint(x: 150, y: 75, scale: .pixel), "xy_keywords"),
            ("pyautogui.click(x=0.15, y=0.15)", ClickPoint(x: 0.15, y: 0.15, scale: .normalized), "xy_keywords"),
            ("(0.49,0.40)", ClickPoint(x: 0.49, y: 0.40, scale: .normalized), "point"),
            ("<box>(100,100),(200,200)</box>", ClickPoint(x: 150, y: 150, scale: .thousandths), "qwen_box"),
            ("<|box_start|>(120,110),(180,190)<|box_end|>", ClickPoint(x: 150, y: 150, scale: .thousandths), "qwen_box"),
            ("click(start_box='<|box_start|>(235,512)<|box_end|>')", ClickPoint(x: 235, y: 512, scale: .thousandths), "qwen_box"),
            ("```json\n[{\"point_2d\": [160, 80], \"label\": \"details\"}]\n```", ClickPoint(x: 160, y: 80, scale: .pixel), "json_point"),
            ("{\"bbox_2d\": [110, 60, 190, 90]}", ClickPoint(x: 150, y: 75, scale: .pixel), "json_box"),
            ("The element is at [110, 60, 190, 90].", ClickPoint(x: 150, y: 75, scale: .pixel), "box"),
            ("I would click at (523, 271).", ClickPoint(x: 523, y: 271, scale: .pixel), "point"),
            ("x: 0.5, y: 0.25", ClickPoint(x: 0.5, y: 0.25, scale: .normalized), "xy_keywords"),
            ("<think>first (1, 2)?</think>Final: (10, 20)", ClickPoint(x: 10, y: 20, scale: .pixel), "point"),
        ]
        for id in ["screenspot", "screenspot-pro"] {
            let suite = try SuiteFiles.suite(id)
            for (response, point, method) in cases {
                XCTAssertEqual(suite.extract(response, item: Item(id: "c")), .answer(point.description, method: method), "\(id): \(response)")
            }
        }
    }

    func testAnswerWithoutCoordinatesIsUnparsed() {
        for response in ["", "I cannot find the element.", "Click the blue button in the top left corner.", "(12)"] {
            let extraction = ClickPointParser.extract(response)
            XCTAssertTrue(extraction.isUnparsed, response)
        }
    }

    func testPointInsideTheBoxIsRightInEveryScale() throws {
        let (suite, items) = try screenSpotFile()
        let item = items[0].item
        func correct(_ response: String) -> Bool {
            suite.score(suite.extract(response, item: item), item: item).correct ?? false
        }
        XCTAssertTrue(correct("pyautogui.click(x=150, y=75)"))
        XCTAssertTrue(correct("pyautogui.click(x=0.15, y=0.15)"))  // 150, 75 in pixels
        XCTAssertTrue(correct("<box>(140,140),(160,160)</box>"))   // thousandths: 150, 75
        XCTAssertTrue(correct("(200, 100)"))                       // edges count, as in SeeClick
        XCTAssertFalse(correct("(201, 100)"))
        XCTAssertFalse(correct("pyautogui.click(x=0.5, y=0.5)"))
        XCTAssertFalse(correct("no idea"))
        // An imported raw answer is parsed at scoring time.
        XCTAssertTrue(suite.score(.answer("pyautogui.click(x=150, y=75)", method: "imported"), item: item).correct == true)
    }

    func testHeadlineIsTheMeanOfThePlatformTypeCells() throws {
        let suite = try SuiteFiles.suite("screenspot")
        func result(_ cell: String, _ right: Bool) -> ScoredItem {
            let platform = String(cell.split(separator: "/")[0])
            return ScoredItem(item: Item(id: UUID().uuidString, category: cell, subcategory: platform, metadata: ["element_type": .string(String(cell.split(separator: "/")[1]))]),
                              extraction: right ? .answer("pixel(1, 1)", method: "point") : .unparsed(reason: "no click coordinates"),
                              score: .binary(right))
        }
        // mobile/text 3 of 3 right, mobile/icon 0 of 1: micro 75, macro over the two cells 50.
        let metrics = suite.aggregate([result("mobile/text", true), result("mobile/text", true), result("mobile/text", true), result("mobile/icon", false)])
        XCTAssertEqual(metrics.score, 50)
        XCTAssertEqual(metrics.metrics["accuracy"], 75)
        XCTAssertEqual(metrics.metrics["type/icon"], 0)
        XCTAssertEqual(metrics.metrics["unparsed_rate"], 25)
        XCTAssertEqual(metrics.unparsed, 1)
    }

    func testProBoxesAreCornersAndGroupsAreReported() throws {
        let suite = try SuiteFiles.suite("screenspot-pro")
        let url = try Fixtures.temporaryDirectory(for: self).appendingPathComponent("ScreenSpot_Pro.tsv")
        try SuiteFiles.writeTSV(
            ["index", "question", "bbox", "category", "application", "ui_type", "image"],
            [["1", "open the layers panel", "[2000, 1000, 2100, 1040]", "Creative", "photoshop", "icon",
              SuiteFiles.png(width: 3840, height: 2160).base64EncodedString()]],
            to: url)
        let item = try SuiteFiles.load(suite, url)[0].item
        XCTAssertEqual(item.category, "Creative")
        XCTAssertEqual(item.subcategory, "photoshop")
        let right = suite.extract("pyautogui.click(x=0.534, y=0.472)", item: item)  // 2050.6, 1019.5
        XCTAssertTrue(suite.score(right, item: item).correct == true)
        let metrics = suite.aggregate([ScoredItem(item: item, extraction: right, score: suite.score(right, item: item))])
        XCTAssertEqual(metrics.metrics["group_type/Creative/icon"], 100)
        XCTAssertEqual(metrics.metrics["subcategory/photoshop"], 100)
        assertSnapshot(SuiteFiles.render(suite.render(item)), named: "screenspot-pro-prompt")
    }

    func testImageSizesFromHeaders() throws {
        XCTAssertEqual(ImageSize.read(SuiteFiles.png(width: 1920, height: 1080))?.width, 1920)
        let gif = Data(Array("GIF89a".utf8) + [0x40, 0x01, 0xF0, 0x00, 0, 0])
        XCTAssertEqual(ImageSize.read(gif)?.height, 240)
        // A baseline JPEG: SOI, an APP0 segment, then SOF0 with height 300 and width 400.
        let jpeg = Data([0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0x2C, 0x01, 0x90, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(ImageSize.read(jpeg).map { [$0.width, $0.height] }, [400, 300])
        XCTAssertNil(ImageSize.read(Data("not an image".utf8)))
    }

    func testBadBoxOrUnreadableScreenshotNamesFileAndLine() throws {
        let suite = try SuiteFiles.suite("screenspot")
        let directory = try Fixtures.temporaryDirectory(for: self)
        let url = directory.appendingPathComponent("ScreenSpot.tsv")
        try SuiteFiles.writeTSV(["index", "question", "bbox", "image"],
                                [["0", "q", "[1, 2, 3]", SuiteFiles.png(width: 10, height: 10).base64EncodedString()]], to: url)
        SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(suite, url) }, file: url.path, line: 2, mentioning: ["bbox", "four numbers"])
        let noBox = directory.appendingPathComponent("NoBox.tsv")
        try SuiteFiles.writeTSV(["index", "question", "image"], [["0", "q", "x"]], to: noBox)
        SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(suite, noBox) }, file: noBox.path, line: 1, mentioning: ["bbox", "screenspot"])
        let pro = directory.appendingPathComponent("ScreenSpot_Pro.tsv")
        try SuiteFiles.writeTSV(["index", "question", "bbox", "image"], [["0", "q", "[1, 2, 3, 4]", "x"]], to: pro)
        SuiteFiles.assertDatasetError({ _ = try SuiteFiles.load(try SuiteFiles.suite("screenspot-pro"), pro) }, file: pro.path, line: 1,
                                      mentioning: ["category", "screenspot-pro"])
        let garbage = directory.appendingPathComponent("Garbage.tsv")
        try SuiteFiles.writeTSV(["index", "question", "bbox", "image"],
                                [["0", "q", "[1, 2, 3, 4]", Data(repeating: 7, count: 80).base64EncodedString()]], to: garbage)
        // Bytes that are no picture are refused when the items load (ImageAccess), before the scorer reads their size:
        // that item is unusable (stored as an error by a sweep), naming the file and line.
        let items = try suite.loadItems(from: DatasetFile.read(garbage))
        let reason = try XCTUnwrap(items.first?.unusable)
        XCTAssertTrue(reason.contains("\(garbage.path):2:") && reason.contains("not an image"), reason)
    }
}
