import AssayBackends
import AssayCore
import AssayServer
import AssayTestSupport
import Foundation
import XCTest

/// Plays back scripted HTTP outcomes, one per attempt.
final class ScriptedTransport: HTTPTransport, @unchecked Sendable {
    let script: Locked<[Result<HTTPResult, TransportFailure>]>
    let sent = Locked<[[String: String]]>([])

    init(_ script: [Result<HTTPResult, TransportFailure>]) {
        self.script = Locked(script)
    }

    func send(method: String, url: URL, headers: [String: String], body: Data?, timeout: TimeInterval) async
        -> Result<HTTPResult, TransportFailure>
    {
        sent.withLock { $0.append(headers) }
        return script.withLock { $0.isEmpty ? .failure(.other("script exhausted")) : $0.removeFirst() }
    }

    static func ok(_ text: String?, finish: String = "stop") -> Result<HTTPResult, TransportFailure> {
        let content = text.map { "\"\($0)\"" } ?? "null"
        let body = #"{"choices":[{"index":0,"message":{"role":"assistant","content":\#(content)},"finish_reason":"\#(finish)"}],"usage":{"prompt_tokens":12,"completion_tokens":3}}"#
        return .success(HTTPResult(status: 200, headers: [:], body: Data(body.utf8)))
    }

    static func status(_ code: Int, body: String = #"{"error":{"message":"nope"}}"#, headers: [String: String] = [:]) -> Result<HTTPResult, TransportFailure> {
        .success(HTTPResult(status: code, headers: headers, body: Data(body.utf8)))
    }
}

final class BackendTests: XCTestCase {
    let request = GenerationRequest(messages: [.user([.text("Q?")])], params: GenerationParams(), suiteID: "s", itemID: "7")

    func make(_ script: [Result<HTTPResult, TransportFailure>], key: String? = nil, attempts: Int = 4) throws -> (OpenAICompatibleBackend, ScriptedTransport) {
        let transport = ScriptedTransport(script)
        let backend = try OpenAICompatibleBackend(
            .init(baseURLs: ["http://127.0.0.1:1"], model: "m", apiKey: key, timeout: 1, maxAttempts: attempts,
                  initialBackoff: 0.001, maxBackoff: 0.01), transport: transport)
        return (backend, transport)
    }

    func testRetriesThenAnswersAndRecordsAttemptsAndUsage() async throws {
        let (backend, transport) = try make([
            ScriptedTransport.status(500), .failure(.timeout("slow")), .failure(.connection("reset")),
            .success(HTTPResult(status: 200, headers: [:], body: Data(#"{"choices":[{"message":"#.utf8))),
            ScriptedTransport.ok("B"),
        ], attempts: 5)
        let response = try await backend.generate(request)
        XCTAssertEqual(response.status, .ok)
        XCTAssertEqual(response.text, "B")
        XCTAssertEqual(response.attempts, 5)
        XCTAssertEqual(response.promptTokens, 12)
        XCTAssertEqual(response.completionTokens, 3)
        XCTAssertEqual(backend.counterSnapshot.retriesByKind, ["http_500": 1, "timeout": 1, "connection": 1, "malformed_json": 1])
        XCTAssertEqual(transport.sent.snapshot.first?["X-Client-Request-Id"], "s/7/0")
    }

    func testFailureAfterRetriesIsAStatusWithoutText() async throws {
        let (backend, _) = try make(Array(repeating: ScriptedTransport.status(503), count: 4))
        let response = try await backend.generate(request)
        XCTAssertEqual(response.status, .error)
        XCTAssertEqual(response.text, "")
        XCTAssertEqual(response.errorKind, "http_503")
        XCTAssertEqual(response.attempts, 4)
        XCTAssertTrue(response.errorMessage?.contains("gave up after 4 attempts") ?? false)
    }

    func testClientErrorsAreNotRetriedAndNullContentIsNotAnAnswer() async throws {
        let (refused, _) = try make([ScriptedTransport.status(400), ScriptedTransport.ok("A")])
        let bad = try await refused.generate(request)
        XCTAssertEqual(bad.status, .error)
        XCTAssertEqual(bad.errorKind, "http_400")
        XCTAssertEqual(bad.attempts, 1)
        let (empty, _) = try make([ScriptedTransport.ok(nil)])
        let none = try await empty.generate(request)
        XCTAssertEqual(none.status, .error)
        XCTAssertEqual(none.errorKind, "empty_content")
    }

    func testLengthFinishIsTruncatedAndTheKeyIsScrubbedFromMessages() async throws {
        let (cut, _) = try make([ScriptedTransport.ok("The answer is", finish: "length")])
        let response = try await cut.generate(request)
        XCTAssertEqual(response.status, .truncated)
        XCTAssertEqual(response.text, "The answer is")

        let key = "sk-secret-123456"
        let (echo, transport) = try make([ScriptedTransport.status(401, body: "bad key \(key)")], key: key)
        let refused = try await echo.generate(request)
        XCTAssertEqual(transport.sent.snapshot.first?["Authorization"], "Bearer \(key)")
        XCTAssertFalse(refused.errorMessage?.contains(key) ?? true, refused.errorMessage ?? "")
        XCTAssertTrue(refused.errorMessage?.contains("[redacted]") ?? false)
    }

    func testRetryAfterIsHonouredAndTooLongAWaitIsAnError() async throws {
        let (backend, _) = try make([ScriptedTransport.status(429, headers: ["retry-after": "0.3"]), ScriptedTransport.ok("C")])
        let started = Date()
        let response = try await backend.generate(request)
        XCTAssertEqual(response.text, "C")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.3)
        let (patient, _) = try make([ScriptedTransport.status(429, headers: ["retry-after": "3600"])])
        let refused = try await patient.generate(request)
        XCTAssertEqual(refused.errorKind, "http_429")
        XCTAssertEqual(refused.attempts, 1)
        XCTAssertEqual(OpenAICompatibleBackend.parseRetryAfter("7"), 7)
        let date = Date().addingTimeInterval(60)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        XCTAssertEqual(try XCTUnwrap(OpenAICompatibleBackend.parseRetryAfter(formatter.string(from: date))), 60, accuracy: 2)
    }

    func testImagesTravelAsDataURLsAndComeBackAsTheSameBytes() throws {
        let png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3])
        let ref = ImageRef(sha256: SHA256.hex(png), byteCount: png.count, origin: "t")
        let wire = try OpenAIWire.messages([.user([.image(ref), .text("What is shown?")])], images: [ref.sha256: png])
        guard case .imageURL(let url) = wire[0].content[0] else { return XCTFail("no image part") }
        XCTAssertTrue(url.hasPrefix("data:image/png;base64,"))
        let back = try OpenAIWire.domainMessages(wire)
        XCTAssertEqual(back.images[ref.sha256], png)
        XCTAssertThrowsError(try OpenAIWire.messages([.user([.image(ref)])], images: [:]))
    }

    func testBaseURLsAcceptTheV1SuffixAndRejectOtherSchemes() throws {
        XCTAssertNoThrow(try OpenAICompatibleBackend(.init(baseURLs: ["http://h:8000/v1/"], model: "m")))
        XCTAssertThrowsError(try OpenAICompatibleBackend(.init(baseURLs: ["ftp://h"], model: "m")))
        XCTAssertThrowsError(try OpenAICompatibleBackend(.init(baseURLs: [], model: "m")))
    }
}

final class AdaptiveConcurrencyTests: XCTestCase {
    func testSlowStartThenHalvingOncePerEpochWithinBounds() async {
        let pool = EndpointPool(urls: ["a"], maximum: 16, initial: 4, minimum: 2)
        var leases: [EndpointLease] = []
        for _ in 0..<4 { leases.append(await pool.acquire()) }
        var loads = await pool.loads
        XCTAssertEqual(loads[0].inFlight, 4)
        for lease in leases { await pool.release(lease, .success) }
        loads = await pool.loads
        XCTAssertEqual(loads[0].limit, 8, "slow start: one more per success")
        // Two overloads from requests started in the same epoch halve once.
        let x = await pool.acquire()
        let y = await pool.acquire()
        await pool.release(x, .overload)
        await pool.release(y, .overload)
        loads = await pool.loads
        XCTAssertEqual(loads[0].limit, 4)
        XCTAssertEqual(loads[0].decreases, 1)
        // After slow start ends, growth is additive: a full limit's worth of successes adds one.
        for _ in 0..<4 { await pool.release(await pool.acquire(), .success) }
        loads = await pool.loads
        XCTAssertEqual(loads[0].limit, 5, accuracy: 0.3)
        for _ in 0..<5 {
            let lease = await pool.acquire()
            await pool.release(lease, .overload)
        }
        loads = await pool.loads
        XCTAssertEqual(loads[0].limit, 2, "never below the minimum")
    }

    func testWaitersAreServedWhenASlotFreesAndLoadIsSpread() async {
        let pool = EndpointPool(urls: ["a", "b"], maximum: 2, initial: 2)
        var leases: [EndpointLease] = []
        for _ in 0..<4 { leases.append(await pool.acquire()) }
        XCTAssertEqual(leases.filter { $0.url == "a" }.count, 2)
        XCTAssertEqual(leases.filter { $0.url == "b" }.count, 2)
        let waiter = Task { await pool.acquire() }
        try? await Task.sleep(nanoseconds: 20_000_000)
        await pool.release(leases[3], .neutral)
        let served = await waiter.value
        XCTAssertEqual(served.url, leases[3].url)
    }

    func testFaultPlanIsDeterministicAndMatchesItsRates() {
        let plan = FaultPlan.acceptanceMix(seed: 1)
        var counts: [ServerFault: Int] = [:]
        for i in 0..<20_000 {
            if let fault = plan.fault(request: "r\(i)", attempt: 1) { counts[fault, default: 0] += 1 }
            XCTAssertEqual(plan.fault(request: "r\(i)", attempt: 1), plan.fault(request: "r\(i)", attempt: 1))
        }
        XCTAssertEqual(Double(counts[.serverError] ?? 0) / 20_000, 0.10, accuracy: 0.01)
        XCTAssertEqual(Double(counts[.rateLimited] ?? 0) / 20_000, 0.05, accuracy: 0.01)
        XCTAssertEqual(Double(counts[.hang] ?? 0) / 20_000, 0.03, accuracy: 0.005)
        XCTAssertEqual(Double(counts[.malformedJSON] ?? 0) / 20_000, 0.02, accuracy: 0.005)
        XCTAssertEqual(Double(counts[.dropConnection] ?? 0) / 20_000, 0.01, accuracy: 0.004)
    }
}

final class KeyRedactionTests: XCTestCase {
    func testPrintingAConfigurationNeverShowsTheKey() {
        let configuration = OpenAICompatibleBackend.Configuration(baseURLs: ["http://h"], model: "m", apiKey: "sk-very-secret")
        for text in ["\(configuration)", String(reflecting: configuration), { var s = ""; dump(configuration, to: &s); return s }()] {
            XCTAssertFalse(text.contains("sk-very-secret"), text)
            XCTAssertTrue(text.contains("[redacted]"), text)
        }
    }
}
