import AssayBackends
import AssayCore
import AssayEngine
import AssayReport
import AssayServer
import AssayStore
import AssaySuites
import AssayTestSupport
import Foundation
import XCTest

/// A judge model for the tests: reads the model response in the judge prompt and answers the way
/// an extraction judge would.
struct ExtractionJudgeResponder: ChatResponder {
    func reply(to request: OpenAIWire.ChatRequest, context: ChatRequestContext) async -> ChatReply {
        let prompt = request.messages.last?.text ?? ""
        guard prompt.contains("Extracted answer:") else { return .failure(status: 400, message: "not a judge prompt") }
        return .answer(prompt.contains("twelve cubes") ? "12" : "NONE")
    }
}

final class JudgeTests: XCTestCase {
    /// Four MathVista-style items: two the rules read, one only a judge can read, one nobody can.
    func makeMathVista(in dir: URL) throws -> (Suite, URL, [String: String]) {
        let catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
        let suite = try catalog.suite("mathvista")
        let file = dir.appendingPathComponent("MathVista_MINI.jsonl")
        try Fixtures.writeJSONL([
            ["index": "1", "question": "How many cubes are there?", "question_type": "free_form", "answer_type": "integer", "answer": "3"],
            ["index": "2", "question": "How many cubes are in the stack?", "question_type": "free_form", "answer_type": "integer", "answer": "12"],
            ["index": "3", "question": "What colour is the sky?", "question_type": "multi_choice", "answer_type": "text", "answer": "blue",
             "choices": ["red", "blue"]],
            ["index": "4", "question": "How long is the bar?", "question_type": "free_form", "answer_type": "float", "answer": "1.5",
             "precision": 1],
        ], to: file)
        let answers = [
            "1": "3",
            "2": "First I count the rows.\nThere are three rows of four.\nSo the stack holds twelve cubes in all.",
            "3": "Looking at the picture carefully.\nThe colour is hard to tell.\nI cannot decide.",
            "4": "1.5",
        ]
        return (suite, file, answers)
    }

    func testRulesFirstJudgeOnlyWhereRulesFailCachedAndReportedBesideTheMetric() async throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let (suite, file, answers) = try makeMathVista(in: dir)
        let store = try Store(path: dir.appendingPathComponent("judge.sqlite").path)
        let entry = [SweepSuite(suite: suite, dataset: file)]
        try await withServer(responder: AnswerKeyResponder(answers: answers)) { model in
            try await withServer(models: ["judge-model"], responder: ExtractionJudgeResponder()) { judgeServer in
                // A suite with a judge step and no judge configured is an error before anything is asked.
                do {
                    _ = try await Sweep(configuration: SweepConfiguration(run: "judged", suites: entry),
                                        backend: try backend(model.baseURL), store: store).run()
                    XCTFail("swept a judged suite without a judge")
                } catch let error as JudgeRequiredError {
                    XCTAssertTrue("\(error)".contains("--no-judge"), "\(error)")
                }
                XCTAssertEqual(model.statistics.chatRequests, 0)

                let judge = JudgeSetting.backend(try backend(judgeServer.baseURL, model: "judge-model"))
                let first = try await Sweep(configuration: SweepConfiguration(run: "judged", suites: entry, judge: judge),
                                            backend: try backend(model.baseURL), store: store).run()
                let summary = try XCTUnwrap(first.suites.first)
                XCTAssertEqual(summary.judge?.mode, .judge)
                XCTAssertEqual(summary.judge?.unparsed, 2, "only the two responses the rules cannot read go to the judge")
                XCTAssertEqual(summary.judge?.asked, 2)
                XCTAssertEqual(judgeServer.statistics.chatRequests, 2)
                XCTAssertEqual(summary.metrics?.score, 75)
                XCTAssertEqual(summary.metrics?.unparsed, 1)
                XCTAssertEqual(summary.metrics?.metrics["judge_rate"], 25)

                // Again: the judge calls come from the store.
                let again = try await Sweep(configuration: SweepConfiguration(run: "judged", suites: entry, judge: judge),
                                            backend: try backend(model.baseURL), store: store).run()
                XCTAssertEqual(again.suites.first?.judge?.cached, 2)
                XCTAssertEqual(again.suites.first?.judge?.asked, 0)
                XCTAssertEqual(judgeServer.statistics.chatRequests, 2)
                XCTAssertEqual(model.statistics.chatRequests, 4)

                // `assay score` later keeps the stored verdicts: no silent downgrade to rules.
                let rescored = try ScoringPass.score(run: "judged", store: store, catalog: try SuiteCatalog(suites: [suite]))
                XCTAssertEqual(rescored.first?.metrics.score, 75)
                let methods = try store.scores(runID: try store.requireRun("judged").id, suiteID: "mathvista").map(\.extraction.method)
                XCTAssertEqual(methods.filter { $0 == "judge" }.count, 1)

                // --no-judge is explicit, and recorded.
                let off = try await Sweep(configuration: SweepConfiguration(run: "rules-only", suites: entry, judge: .off),
                                          backend: try backend(model.baseURL), store: store).run()
                XCTAssertEqual(off.suites.first?.judge?.mode, .off)
                XCTAssertEqual(off.suites.first?.metrics?.score, 50)
                XCTAssertEqual(off.suites.first?.metrics?.unparsed, 2)
                XCTAssertNil(off.suites.first?.metrics?.metrics["judge_rate"])
            }
        }
        let report = try MarkdownReport.build(
            store: store, catalog: try SuiteCatalog(suites: [suite]), base: "rules-only", runs: ["judged"], chartFileName: "c.svg",
            resamples: 200)
        XCTAssertTrue(report.markdown.contains("## Judges"), report.markdown)
        XCTAssertTrue(report.markdown.contains("| rules-only | mathvista | **none: `--no-judge`**"), report.markdown)
        XCTAssertTrue(report.markdown.contains("| judged | mathvista | judge-model (`mathvista/answer_extraction@1`) | 25.0% | 1 |"),
                      report.markdown)
    }

    func testGradingJudgeReadsCorrectOrIncorrectAndScoresIt() throws {
        let dir = try Fixtures.temporaryDirectory(for: self)
        let folder = dir.appendingPathComponent("graded")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try """
            id: graded
            prompt:
              version: 1
              template: "{question}"
            scorer: multiple_choice
            judge:
              task: grading
              version: 2
            """.write(to: folder.appendingPathComponent("suite.yaml"), atomically: true, encoding: .utf8)
        let suite = try XCTUnwrap(SuiteCatalog.loadDirectory(dir).first)
        let task = try XCTUnwrap(JudgeTask(suite: suite))
        XCTAssertEqual(task.name, "graded/grading@2")
        let item = Item(id: "1", question: "What is the peak?", answers: ["42"])
        let prompt = task.messages(item: item, response: "<think>long</think>It peaks at 42.").map(\.renderedText).joined()
        XCTAssertTrue(prompt.contains("Reference answer:\n42") && prompt.contains("It peaks at 42.") && !prompt.contains("long"), prompt)
        XCTAssertEqual(task.verdict(from: "CORRECT"), "correct")
        XCTAssertEqual(task.verdict(from: "Grade: incorrect."), "incorrect")
        XCTAssertNil(task.verdict(from: "maybe"))
        XCTAssertEqual(task.outcome(verdict: "correct", item: item).1.value, 1)
        XCTAssertEqual(task.outcome(verdict: "incorrect", item: item).1.value, 0)
        // A judge task the engine does not know is refused when the suite is loaded.
        try """
            id: graded
            prompt:
              version: 1
              template: "{question}"
            scorer: multiple_choice
            judge:
              task: vibes
              version: 1
            """.write(to: folder.appendingPathComponent("suite.yaml"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try SuiteCatalog.loadDirectory(dir))
    }

    func testJudgeVerdictParsing() throws {
        let catalog = try SuiteCatalog.load(builtIn: Fixtures.suitesDirectory)
        let task = try XCTUnwrap(JudgeTask(suite: try catalog.suite("mathvista")))
        XCTAssertEqual(task.verdict(from: "12"), "12")
        XCTAssertEqual(task.verdict(from: "Extracted answer: (B)\nbecause…"), "(B)")
        XCTAssertEqual(task.verdict(from: "<think>hmm</think>\n3.5"), "3.5")
        XCTAssertNil(task.verdict(from: "NONE"))
        XCTAssertNil(task.verdict(from: "   "))
        XCTAssertNil(JudgeTask(suite: try catalog.suite("mmstar")), "rule-only suites have no judge step")
    }
}
