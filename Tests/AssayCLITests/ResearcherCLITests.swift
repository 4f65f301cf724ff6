import AssayTestSupport
import Foundation
import XCTest

/// What a researcher sees without sqlite3: versions, runs, responses, suites, per-category
/// comparisons, and errors that name the file and say what to do.
extension CLITests {
    // MARK: Helpers

    /// A three-item MMStar dataset and predictions for two of them whose text holds every
    /// character CSV/TSV must quote.
    func tinyMMStarRun(db: String, run: String = "r", extra: [String] = []) throws -> (items: URL, texts: [String: String]) {
        let items = directory.appendingPathComponent("mmstar-items.jsonl")
        try Fixtures.writeJSONL((0..<3).map {
            ["index": $0, "question": "q\($0)", "answer": ["A", "B", "C"][$0], "category": $0 == 2 ? "art" : "math", "l2-category": "g",
             "A": "one", "B": "two", "C": "three"]
        }, to: items)
        let texts = ["0": "The answer is (A), \"clearly\";\nsecond line\twith a tab", "1": "I think C, not B"]
        let predictions = directory.appendingPathComponent("\(run)-predictions.jsonl")
        try Fixtures.writeJSONL(texts.keys.sorted().map { ["index": Int($0)!, "prediction": texts[$0]!] }, to: predictions)
        try assay(["import", "--db", db, "--suite", "mmstar", "--data", items.path, "--predictions", predictions.path, "--run", run] + extra)
        return (items, texts)
    }

    /// RFC 4180 fields of a CSV/TSV text (quoted fields may hold separators, quotes, line breaks).
    func parseDelimited(_ text: String, separator: Character) -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = ""
        var quoted = false, index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            let next = text.index(after: index)
            if quoted {
                if c == "\"" {
                    if next < text.endIndex, text[next] == "\"" {
                        field.append("\"")
                        index = text.index(after: next)
                        continue
                    }
                    quoted = false
                } else {
                    field.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == separator {
                row.append(field)
                field = ""
            } else if c == "\r\n" || c == "\n" {
                row.append(field)
                rows.append(row)
                row = []
                field = ""
            } else {
                field.append(c)
            }
            index = next
        }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }

    // MARK: Point 5: --version

    func testVersionIsPrinted() throws {
        let (out, _) = try assay(["--version"])
        let version = out.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertNotNil(version.range(of: #"^\d+\.\d+\.\d+"#, options: .regularExpression), "'\(version)'")
    }

    // MARK: Point 3: runs list, responses export, suites show

    func testRunsListAndResponsesExportInEveryFormat() throws {
        let db = directory.appendingPathComponent("browse.sqlite").path
        let (_, texts) = try tinyMMStarRun(db: db)
        try assay(["score", "--db", db, "--run", "r"])

        let runs = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(try assay(["runs", "list", "--db", db, "--json"]).stdout.utf8)) as? [[String: Any]])
        XCTAssertEqual(runs.count, 1)
        let run = try XCTUnwrap(runs.first)
        XCTAssertEqual(run["name"] as? String, "r")
        XCTAssertEqual(run["model"] as? String, "r")
        XCTAssertEqual(run["backend"] as? String, "replay")
        XCTAssertEqual(run["suites"] as? [String], ["mmstar"])
        XCTAssertEqual(run["n"] as? Int, 2)
        XCTAssertEqual(run["items"] as? Int, 3)
        XCTAssertEqual(run["status"] as? String, "1 missing")
        XCTAssertNotNil(run["created_at"] as? String)
        let table = try assay(["runs", "list", "--db", db]).stdout
        XCTAssertTrue(table.contains("name") && table.contains("status") && table.contains("2/3") && table.contains("replay"), table)

        for format in ["csv", "tsv"] {
            let out = directory.appendingPathComponent("responses.\(format)")
            try assay(["responses", "export", "--db", db, "--run", "r", "--format", format, "--out", out.path])
            let rows = parseDelimited(try String(contentsOf: out, encoding: .utf8), separator: format == "csv" ? "," : "\t")
            XCTAssertEqual(rows.count, 3, "\(format): \(rows)")
            let header = rows[0]
            for column in ["suite", "item_id", "sample", "cache_key", "response", "answer", "score", "status", "latency_seconds", "prompt_tokens"] {
                XCTAssertTrue(header.contains(column), "\(format) lacks \(column): \(header)")
            }
            let itemColumn = try XCTUnwrap(header.firstIndex(of: "item_id"))
            let byItem = Dictionary(rows.dropFirst().map { ($0[itemColumn], $0) }, uniquingKeysWith: { a, _ in a })
            for (item, text) in texts {
                let row = try XCTUnwrap(byItem[item], "\(format): no row for item \(item)")
                XCTAssertEqual(row.count, header.count, "\(format) row \(item) has \(row.count) fields")
                XCTAssertEqual(row[header.firstIndex(of: "response")!], text, "\(format) round trip of item \(item)")
                XCTAssertEqual(row[header.firstIndex(of: "suite")!], "mmstar")
            }
            XCTAssertEqual(byItem["0"]?[header.firstIndex(of: "answer")!], "A")
            XCTAssertEqual(byItem["0"]?[header.firstIndex(of: "score")!], "1")
            XCTAssertEqual(byItem["1"]?[header.firstIndex(of: "score")!], "0")
        }
        let jsonl = directory.appendingPathComponent("responses.jsonl")
        try assay(["responses", "export", "--db", db, "--run", "r", "--suite", "mmstar", "--format", "jsonl", "--out", jsonl.path])
        let lines = try String(contentsOf: jsonl, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        let objects = try lines.map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        XCTAssertEqual(Set(objects.compactMap { $0["response"] as? String }), Set(texts.values))
        XCTAssertEqual(objects.first?["status"] as? String, "ok")
        XCTAssertEqual((objects.first?["cache_key"] as? String)?.count ?? 0 > 16, true)

        let (_, badSuite) = try assay(["responses", "export", "--db", db, "--run", "r", "--suite", "blink", "--format", "csv",
                                       "--out", directory.appendingPathComponent("x.csv").path], expectFailure: true)
        XCTAssertTrue(badSuite.contains("no suite 'blink'") && badSuite.contains("mmstar"), badSuite)
        let (_, badFormat) = try assay(["responses", "export", "--db", db, "--run", "r", "--format", "xlsx", "--out", "-"], expectFailure: true)
        XCTAssertTrue(badFormat.contains("jsonl, csv or tsv"), badFormat)
    }

    func testSuitesShowRendersASampleItem() throws {
        let (sanity, _) = try assay(["suites", "show", "sanity"])
        for needle in ["sanity: Sanity", "required columns: index, question, answer", "metric: accuracy", "protocol: headline mean over items",
                       "scorer multiple_choice/", "sample item", "(generated)", "rendered user message:", "Answer with the option's letter"] {
            XCTAssertTrue(sanity.contains(needle), "suites show sanity lacks '\(needle)':\n\(sanity)")
        }
        let rendered = try XCTUnwrap(sanity.components(separatedBy: "rendered user message:").last)
        XCTAssertFalse(rendered.contains("{question}") || rendered.contains("[["), "the sample prompt is not rendered:\n\(rendered)")

        let empty = directory.appendingPathComponent("no-data")
        let (absent, _) = try assay(["suites", "show", "mmstar", "--data-dir", empty.path])
        XCTAssertTrue(absent.contains("not fetched (expected at \(empty.path)/MMStar.tsv)"), absent)
        XCTAssertTrue(absent.contains("assay data fetch mmstar"), absent)
        XCTAssertTrue(absent.contains("MD5 e1ecd2140806c1b1bbf54b43372efb9e"), absent)

        let items = directory.appendingPathComponent("rows.jsonl")
        try Fixtures.writeJSONL([["index": 7, "question": "Which shape is red?", "answer": "B", "category": "c", "l2-category": "d",
                                  "A": "circle", "B": "square"]], to: items)
        let (row, _) = try assay(["suites", "show", "mmstar", "--data", items.path])
        for needle in ["sample item 7", "Question: Which shape is red?", "A. circle", "B. square", "gold answer: B"] {
            XCTAssertTrue(row.contains(needle), "suites show mmstar --data lacks '\(needle)':\n\(row)")
        }
        let (_, unknown) = try assay(["suites", "show", "nosuch"], expectFailure: true)
        XCTAssertTrue(unknown.contains("unknown suite 'nosuch'"), unknown)
    }

    // MARK: Point 4: databases are never created by reading commands; errors name the file

    func testReadingCommandsNeverCreateADatabaseAndNameTheFile() throws {
        let missing = directory.appendingPathComponent("typo/assay.sqlite").path
        let commands: [(command: [String], rest: [String])] = [
            (["metrics"], ["--run", "r"]), (["compare"], ["--base", "a", "--candidate", "b"]),
            (["report"], ["--runs", "r", "--out", directory.appendingPathComponent("r.md").path]), (["score"], ["--run", "r"]),
            (["runs", "list"], []), (["responses", "export"], ["--run", "r", "--format", "csv", "--out", "-"]),
        ]
        for (command, rest) in commands {
            let (_, stderr) = try assay(command + ["--db", missing] + rest, expectFailure: true)
            XCTAssertTrue(stderr.contains(missing), "\(command) does not name \(missing): \(stderr)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: missing), "\(command) created \(missing)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("typo").path), "\(command) created the folder")
        }

        let db = directory.appendingPathComponent("real.sqlite").path
        _ = try tinyMMStarRun(db: db)
        let (_, unknown) = try assay(["metrics", "--db", db, "--run", "nope"], expectFailure: true)
        XCTAssertTrue(unknown.contains("no run named 'nope' in \(db)") && unknown.contains("runs: r"), unknown)
        let (_, compare) = try assay(["compare", "--db", db, "--base", "r", "--candidate", "nope"], expectFailure: true)
        XCTAssertTrue(compare.contains("no run named 'nope' in \(db)"), compare)
        let (_, unscored) = try assay(["compare", "--db", db, "--base", "r", "--candidate", "r"], expectFailure: true)
        XCTAssertTrue(unscored.contains(db) && unscored.contains("assay score"), unscored)
        // Reading changes nothing in the file.
        try assay(["score", "--db", db, "--run", "r"])
        try assay(["runs", "list", "--db", db])  // the writer's WAL is checkpointed by the time a new reader opens
        let before = try Data(contentsOf: URL(fileURLWithPath: db))
        try assay(["metrics", "--db", db, "--run", "r"])
        try assay(["compare", "--db", db, "--base", "r", "--candidate", "r", "--json"])
        try assay(["runs", "list", "--db", db, "--json"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: db)), before, "a reading command wrote to the database")
    }

    func testImportWithSuitesDirIsRememberedByScoreCompareAndReport() throws {
        let suites = directory.appendingPathComponent("my-suites")
        let folder = suites.appendingPathComponent("mystar")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let yaml = try String(contentsOf: Fixtures.suitesDirectory.appendingPathComponent("mmstar/suite.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "id: mmstar", with: "id: mystar")
        try yaml.write(to: folder.appendingPathComponent("suite.yaml"), atomically: true, encoding: .utf8)
        let items = directory.appendingPathComponent("items.jsonl")
        try Fixtures.writeJSONL([["index": 0, "question": "q", "answer": "A", "category": "c", "l2-category": "d"],
                                 ["index": 1, "question": "q", "answer": "B", "category": "c", "l2-category": "d"]], to: items)
        let db = directory.appendingPathComponent("user.sqlite").path
        for (run, answer) in [("a", "A"), ("b", "B")] {
            let predictions = directory.appendingPathComponent("\(run).jsonl")
            try Fixtures.writeJSONL([["index": 0, "prediction": answer], ["index": 1, "prediction": answer]], to: predictions)
            let (out, _) = try assay(["import", "--db", db, "--suites-dir", suites.path, "--suite", "mystar", "--data", items.path,
                                      "--predictions", predictions.path, "--run", run])
            XCTAssertTrue(out.contains("next: assay score --db \(db) --run \(run) --suites-dir \(suites.path)"), out)
            // Without the flag: the run remembers where its suite is.
            XCTAssertTrue(try assay(["score", "--db", db, "--run", run]).stdout.contains("mystar: 50.00"))
        }
        try assay(["metrics", "--db", db, "--run", "a"])
        // With a --suites-dir that lacks the suite, the error says which suite and what to pass.
        let (_, wrong) = try assay(["score", "--db", db, "--run", "a", "--suites-dir", directory.path], expectFailure: true)
        XCTAssertTrue(wrong.contains("holds suite 'mystar'") && wrong.contains("--suites-dir") && wrong.contains(db), wrong)
        let (_, wrongCompare) = try assay(["compare", "--db", db, "--base", "a", "--candidate", "b", "--suites-dir", directory.path], expectFailure: true)
        XCTAssertTrue(wrongCompare.contains("holds suite 'mystar'") && wrongCompare.contains(db), wrongCompare)
        XCTAssertTrue(try assay(["compare", "--db", db, "--base", "a", "--candidate", "b"]).stdout.contains("mystar"))
        let report = directory.appendingPathComponent("user.md")
        try assay(["report", "--db", db, "--base", "a", "--runs", "b", "--out", report.path])
        XCTAssertTrue(try String(contentsOf: report, encoding: .utf8).contains("| mystar |"))
    }

    // MARK: Point 4: data fetch offline

    func testDataFetchOfflineSaysWhereToPutTheFileAndGoesOn() throws {
        let suites = directory.appendingPathComponent("offline-suites")
        let data = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        // Suite "ready" has its file in place with the right MD5; the others point at a closed port.
        let readyText = "index\tquestion\tanswer\n0\tq\tA\n"
        try readyText.write(to: data.appendingPathComponent("READY.tsv"), atomically: true, encoding: .utf8)
        let readyMD5 = try md5(of: data.appendingPathComponent("READY.tsv"))
        for (id, name, md5) in [("first-down", "FIRST", "0123456789abcdef0123456789abcdef"), ("ready", "READY", readyMD5),
                                ("second-down", "SECOND", "fedcba9876543210fedcba9876543210")] {
            let folder = suites.appendingPathComponent(id)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try """
                id: \(id)
                source:
                  format: vlmevalkit_tsv
                  name: \(name)
                  url: http://127.0.0.1:9/\(name).tsv
                  md5: \(md5)
                prompt:
                  version: 1
                  template: "{question}"
                scorer: multiple_choice
                """.write(to: folder.appendingPathComponent("suite.yaml"), atomically: true, encoding: .utf8)
        }
        let (out, err) = try assay(["data", "fetch", "--suites-dir", suites.path, "--data-dir", data.path, "first-down", "ready", "second-down"],
                                   expectFailure: true)
        XCTAssertTrue(out.contains("ready: \(data.path)/READY.tsv (already there, MD5 verified)"), "the fetch stopped at the first failure:\n\(out)\n\(err)")
        for (id, name, md5) in [("first-down", "FIRST", "0123456789abcdef0123456789abcdef"), ("second-down", "SECOND", "fedcba9876543210fedcba9876543210")] {
            XCTAssertTrue(err.contains("\(id): download of http://127.0.0.1:9/\(name).tsv"), err)
            XCTAssertTrue(err.contains("place it at \(data.path)/\(name).tsv"), err)
            XCTAssertTrue(err.contains("MD5 must be \(md5)"), err)
        }
        XCTAssertTrue(err.contains("--data FILE"), err)
        XCTAssertTrue(err.contains("not fetched: first-down, second-down (1 of 3 suites ready)"), err)
    }

    func md5(of url: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["md5sum", url.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return String(text.prefix(32))
    }

    // MARK: Point 4: options are checked before a model loads

    func testBadShardIsRejectedBeforeTheModelLoads() throws {
        let db = directory.appendingPathComponent("shard.sqlite").path
        let (_, err) = try assay(["sweep", "--db", db, "--run", "s", "--suites", "sanity", "--backend", "local",
                                  "--model-path", "/nonexistent/model.gguf", "--shard", "3/2"], expectFailure: true)
        XCTAssertTrue(err.contains("--shard '3/2' must be i/n"), err)
        XCTAssertFalse(err.contains("loading"), err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: db), "a refused sweep left a database behind")
        let (_, pixels) = try assay(["sweep", "--db", db, "--run", "s", "--suites", "sanity", "--base-url", "http://127.0.0.1:9",
                                     "--model-name", "m", "--max-pixels", "100000"], expectFailure: true)
        XCTAssertTrue(pixels.contains("--backend local only"), pixels)
    }

    // MARK: Point 1: the BLINK comparison's subtask deltas in compare --json and the report

    func testCompareJSONAndReportHaveBLINKsFourteenSubtaskDeltas() throws {
        let folder = try Fixtures.require("benchmarks/blink")
        let answers = try Fixtures.readJSON(folder.appendingPathComponent("val_answers.json")) as! [String: String]
        let items = directory.appendingPathComponent("blink.jsonl")
        try Fixtures.writeJSONL(answers.keys.sorted().map {
            ["index": $0, "answer": answers[$0]!, "category": $0.dropFirst(4).split(separator: "_").dropLast().joined(separator: "_")]
        }, to: items)
        let db = directory.appendingPathComponent("blink.sqlite").path
        var subtasks: [String: [String: Double]] = [:]
        for (model, run) in [("GPT4o", "gpt4o"), ("llava_v1.5_7b", "llava7b")] {
            let predictions = try Fixtures.readJSON(folder.appendingPathComponent("saved_val_predictions/\(model).json")) as! [String: String]
            let url = directory.appendingPathComponent("\(run).jsonl")
            try Fixtures.writeJSONL(predictions.keys.sorted().map { ["index": $0, "prediction": predictions[$0]!] }, to: url)
            try assay(["import", "--db", db, "--suite", "blink", "--data", items.path, "--predictions", url.path, "--run", run, "--model", model, "--extracted"])
            try assay(["score", "--db", db, "--run", run])
            let metrics = try XCTUnwrap((try json(try assay(["metrics", "--db", db, "--run", run, "--json"]).stdout))["blink"] as? [String: Any])
            for (name, value) in try XCTUnwrap(metrics["metrics"] as? [String: Double]) where name.hasPrefix("category/") {
                subtasks[run, default: [:]][String(name.dropFirst("category/".count))] = value
            }
        }
        XCTAssertEqual(subtasks["gpt4o"]?.count, 14)

        let compare = try json(try assay(["compare", "--db", db, "--base", "llava7b", "--candidate", "gpt4o", "--json", "--resamples", "1000"]).stdout)
        let blink = try XCTUnwrap((compare["suites"] as? [String: Any])?["blink"] as? [String: Any])
        let categories = try XCTUnwrap(blink["categories"] as? [String: [String: Any]])
        XCTAssertEqual(categories.count, 14)
        for (name, entry) in categories {
            let base = try XCTUnwrap(subtasks["llava7b"]?[name], name), candidate = try XCTUnwrap(subtasks["gpt4o"]?[name], name)
            XCTAssertEqual(try XCTUnwrap(entry["delta"] as? Double), candidate - base, accuracy: 1e-9, name)
            XCTAssertEqual(try XCTUnwrap(entry["base"] as? Double), base, accuracy: 1e-9, name)
            XCTAssertEqual(try XCTUnwrap(entry["candidate"] as? Double), candidate, accuracy: 1e-9, name)
            let ci = try XCTUnwrap(entry["ci95"] as? [Double], name)
            XCTAssertTrue(ci.count == 2 && ci[0] <= candidate - base && candidate - base <= ci[1], "\(name): \(ci)")
            XCTAssertNotNil(entry["p_value"] as? Double, name)
            XCTAssertGreaterThan(entry["n_paired"] as? Int ?? 0, 0, name)
        }
        let text = try assay(["compare", "--db", db, "--base", "llava7b", "--candidate", "gpt4o", "--resamples", "200"]).stdout
        XCTAssertTrue(text.contains("average delta over 1 suite: +22.91"), text)
        XCTAssertTrue(text.contains("    Counting"), text)

        let report = directory.appendingPathComponent("blink-report.md")
        try assay(["report", "--db", db, "--base", "llava7b", "--runs", "gpt4o", "--out", report.path, "--resamples", "500"])
        let markdown = try String(contentsOf: report, encoding: .utf8)
        XCTAssertTrue(markdown.contains("#### blink by category (Δ vs llava7b)"), markdown)
        let counting = try XCTUnwrap(markdown.split(separator: "\n").first { $0.hasPrefix("| Counting |") }, markdown)
        let delta = try XCTUnwrap(subtasks["gpt4o"]?["Counting"]) - XCTUnwrap(subtasks["llava7b"]?["Counting"])
        XCTAssertTrue(counting.contains(String(format: "| %+.2f |", delta)), "\(counting) lacks \(delta)")
        // Imported runs: generation settings unknown, recorded settings listed, coverage stated.
        XCTAssertTrue(markdown.contains("| gpt4o | candidate | GPT4o | replay, source ") && markdown.contains("| unknown (imported predictions) |"), markdown)
        XCTAssertFalse(markdown.contains("maxTokens"), markdown)
        XCTAssertTrue(markdown.contains("## Run settings") && markdown.contains("source: import"), markdown)
        XCTAssertTrue(markdown.contains("| 1901 of 1901 |"), markdown)
    }
}
