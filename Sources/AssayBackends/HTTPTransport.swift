#if RemoteBackends
import AsyncHTTPClient
#endif
import Foundation
import NIOCore
import NIOConcurrencyHelpers
import NIOHTTP1

/// An HTTP response as the backends need it: status, headers (names lower-cased) and body.
public struct HTTPResult: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: Data

    public init(status: Int, headers: [String: String], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Why no HTTP response arrived.
public enum TransportFailure: Error, Sendable, Hashable, CustomStringConvertible {
    /// Nothing (or not all of it) within the timeout.
    case timeout(String)
    /// Refused, reset or closed before a complete response.
    case connection(String)
    /// The body was longer than the transport's cap; asking again would get the same.
    case tooLarge(String)
    case cancelled
    case other(String)

    /// The error kind recorded on a response that failed this way.
    public var kind: String {
        switch self {
        case .timeout: return "timeout"
        case .connection: return "connection"
        case .tooLarge: return "response_too_large"
        case .cancelled: return "cancelled"
        case .other: return "transport"
        }
    }

    public var description: String {
        switch self {
        case .timeout(let m), .connection(let m), .tooLarge(let m), .other(let m): return m
        case .cancelled: return "cancelled"
        }
    }
}

/// Sends one HTTP request. A seam so the backend's retry logic does not depend on the client
/// library, and so tests can script the transport.
public protocol HTTPTransport: Sendable {
    /// `timeout` is the whole attempt's deadline: connect, send, head and every byte of the body.
    func send(method: String, url: URL, headers: [String: String], body: Data?, timeout: TimeInterval) async
        -> Result<HTTPResult, TransportFailure>
}

/// The limits one `NIOHTTPTransport` enforces on every request.
public struct HTTPTransportLimits: Sendable, Hashable {
    /// Sockets per server (scheme, host, port); the backend's maximum concurrency, so the limit
    /// the adaptive limiter chooses is the one in force.
    public var connectionsPerHost: Int
    /// Seconds to open a connection; a server that does not accept is down, and waiting the
    /// whole request deadline for it only delays the retry on another endpoint.
    public var connectTimeout: TimeInterval
    /// Seconds without a byte from the server before the attempt fails (a server that accepted
    /// and went silent).
    public var readIdleTimeout: TimeInterval
    /// Most bytes of body accepted; a longer body fails the attempt (`.tooLarge`) and the
    /// connection is closed instead of buffered.
    public var maxResponseBytes: Int

    public init(connectionsPerHost: Int, connectTimeout: TimeInterval = 10, readIdleTimeout: TimeInterval,
                maxResponseBytes: Int = 8 << 20) {
        self.connectionsPerHost = connectionsPerHost
        self.connectTimeout = connectTimeout
        self.readIdleTimeout = readIdleTimeout
        self.maxResponseBytes = maxResponseBytes
    }
}

#if RemoteBackends
/// AsyncHTTPClient on swift-nio: a connection pool per server, connect and read-idle timeouts,
/// an overall deadline per request that covers the body too (a server trickling one byte at a
/// time cannot hold a request past it), a capped streamed body, and cancellation that closes the
/// connection. It replaced URLSession, whose Linux implementation (libcurl under dispatch
/// sources) spun at 100% CPU and never returned when a server closed a connection without
/// answering.
public final class NIOHTTPTransport: HTTPTransport {
    public let limits: HTTPTransportLimits
    private let client: HTTPClient

    public init(limits: HTTPTransportLimits) {
        self.limits = limits
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: Self.amount(limits.connectTimeout), read: Self.amount(limits.readIdleTimeout))
        configuration.connectionPool = .init(
            idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, limits.connectionsPerHost))
        // A refused connection is an attempt's failure, retried by the backend with backoff (and
        // possibly on another endpoint), not something to retry silently until the connect timeout.
        configuration.connectionPool.retryConnectionEstablishment = false
        // An OpenAI endpoint never redirects a POST; following one would resend the key elsewhere.
        configuration.redirectConfiguration = .disallow
        configuration.decompression = .disabled
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    deinit {
        // Non-blocking: the client keeps itself alive until its pool has closed every connection.
        client.shutdown(queue: .global()) { _ in }
    }

    static func amount(_ seconds: TimeInterval) -> TimeAmount {
        // Bounded so a configuration of days (or a huge value) cannot overflow nanoseconds.
        .nanoseconds(Int64(min(max(seconds, 0.001), 86_400 * 30) * 1e9))
    }

    public func send(method: String, url: URL, headers: [String: String], body: Data?, timeout: TimeInterval) async
        -> Result<HTTPResult, TransportFailure>
    {
        let place = "\(method) \(url.absoluteString)"
        let seconds = min(max(timeout, 0.001), 86_400 * 30)
        let deadline = NIODeadline.now() + Self.amount(seconds)
        // AsyncHTTPClient's own deadline stops at the response head, so a timer on the event loop
        // cancels the request at the deadline: that is what bounds a trickled body.
        let request = Task {
            await self.perform(method: method, url: url, headers: headers, body: body, deadline: deadline, place: place, timeout: seconds)
        }
        let expired = NIOLockedValueBox(false)
        let timer = client.eventLoopGroup.any().scheduleTask(deadline: deadline) {
            expired.withLockedValue { $0 = true }
            request.cancel()
        }
        let result = await withTaskCancellationHandler {
            await request.value
        } onCancel: {
            request.cancel()
        }
        timer.cancel()
        if expired.withLockedValue({ $0 }), case .failure = result {
            return .failure(.timeout("no complete response within \(Self.format(seconds)) s (\(place))"))
        }
        return result
    }

    private func perform(method: String, url: URL, headers: [String: String], body: Data?, deadline: NIODeadline,
                         place: String, timeout: TimeInterval) async -> Result<HTTPResult, TransportFailure> {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        do {
            let response = try await client.execute(request, deadline: deadline)
            if let declared = response.headers.first(name: "content-length").flatMap(Int.init), declared > limits.maxResponseBytes {
                return .failure(.tooLarge("response of \(declared) bytes, more than the \(limits.maxResponseBytes) allowed (\(place))"))
            }
            var collected = ByteBuffer()
            for try await var chunk in response.body {
                guard collected.readableBytes + chunk.readableBytes <= limits.maxResponseBytes else {
                    // Leaving the loop drops the body stream; AsyncHTTPClient then closes the connection.
                    return .failure(.tooLarge("response body past \(limits.maxResponseBytes) bytes (\(place))"))
                }
                collected.writeBuffer(&chunk)
            }
            var fields: [String: String] = [:]
            for (name, value) in response.headers { fields[name.lowercased()] = value }
            return .success(HTTPResult(status: Int(response.status.code), headers: fields, body: Data(collected.readableBytesView)))
        } catch {
            return .failure(Self.classify(error, place: place, timeout: timeout))
        }
    }

    static func classify(_ error: any Error, place: String, timeout: TimeInterval) -> TransportFailure {
        if error is CancellationError { return .cancelled }
        if let error = error as? HTTPClientError {
            switch error {
            case .readTimeout: return .timeout("no byte from the server within the read timeout (\(place))")
            case .connectTimeout, .getConnectionFromPoolTimeout: return .timeout("could not connect in time (\(place))")
            case .deadlineExceeded, .writeTimeout: return .timeout("no complete response within \(format(timeout)) s (\(place))")
            case .cancelled: return Task.isCancelled ? .cancelled : .connection("request cancelled by the client library (\(place))")
            case .remoteConnectionClosed: return .connection("connection closed by the server before a complete response (\(place))")
            case .bodyLengthMismatch: return .connection("body shorter than its Content-Length (\(place))")
            case .invalidURL, .emptyHost, .emptyScheme: return .other("\(error) (\(place))")
            default: return .connection("\(error) (\(place))")
            }
        }
        if let error = error as? ChannelError, case .connectTimeout = error {
            return .timeout("could not connect in time (\(place))")
        }
        if Task.isCancelled { return .cancelled }
        // Refused or reset sockets (IOError, NIOConnectionError), malformed HTTP (HTTPParserError,
        // a truncated chunked body): the server or the path to it failed; another attempt may not.
        return .connection("\(error) (\(place))")
    }

    static func format(_ seconds: TimeInterval) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(format: "%.3g", seconds)
    }
}
#endif
