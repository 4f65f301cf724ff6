import AssayCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A request as the server hands it to its handler.
public struct HTTPServerRequest: Sendable {
    public var method: String
    /// Path and query as sent (`/v1/chat/completions`).
    public var uri: String
    /// Header names lower-cased.
    public var headers: [String: String]
    public var body: Data

    public init(method: String, uri: String, headers: [String: String], body: Data) {
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
    }

    /// The path without the query.
    public var path: String { String(uri.split(separator: "?", maxSplits: 1).first ?? "") }
}

/// What the server does with a request. Besides ordinary responses it can misbehave on purpose,
/// the way real servers do under load, so that clients are tested against the real failures.
public enum HTTPServerReply: Sendable {
    case response(status: Int, headers: [(String, String)], body: Data)
    /// Never answer; the connection stays open until the client gives up.
    case hang
    /// Close the connection without answering.
    case dropConnection
    /// Send the head and the first `bytes` of the body (the head announces the whole length),
    /// then close: an interrupted transfer.
    case truncatedBody(status: Int, headers: [(String, String)], body: Data, bytes: Int)
    /// Wait `seconds` after the request, then close without a byte: a crashed worker behind a
    /// proxy. (URLSession on Linux spun forever on this one.)
    case closeAfter(seconds: Double)
    /// Send the head (announcing the whole length), then the body one byte every `interval`
    /// seconds: a stalled upstream that never quite goes idle. Stops when the client closes.
    case trickle(status: Int, headers: [(String, String)], body: Data, interval: Double)
    /// Send the head announcing a body, then nothing; the connection stays open.
    case headersOnly(status: Int, headers: [(String, String)], announcedBytes: Int)
    /// A 200 with `Transfer-Encoding: chunked`: the first `bytes` of the body as one chunk, then
    /// close without the terminating chunk.
    case truncatedChunked(status: Int, headers: [(String, String)], body: Data, bytes: Int)
    /// A body written piece by piece as `chunks` yields them (chunked transfer encoding: server-
    /// sent events). `onAbort` runs when the client goes away before the stream ends.
    case stream(status: Int, headers: [(String, String)], chunks: AsyncStream<Data>, onAbort: @Sendable () -> Void)

    public static func json(_ status: Int, _ body: Data, headers: [(String, String)] = []) -> HTTPServerReply {
        .response(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
    }

    public static func text(_ status: Int, _ text: String) -> HTTPServerReply {
        .response(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Data(text.utf8))
    }
}

/// What a connection may send before the server gives up on it. The defaults impose nothing,
/// which is what the fault-injecting test server wants; `assay serve` sets all three.
public struct HTTPServerLimits: Sendable {
    /// Largest request body; a larger one is answered with `tooLarge` and the connection closed.
    public var maxBodyBytes: Int?
    /// Longest time a request may take to arrive, head and body (slow clients): after it the
    /// server answers 408 if a request had begun, and closes the connection.
    public var requestTimeout: TimeAmount?
    /// Longest time an idle keep-alive connection is kept open.
    public var idleTimeout: TimeAmount?
    /// The answer to a body over `maxBodyBytes`.
    public var tooLarge: HTTPServerReply

    public init(maxBodyBytes: Int? = nil, requestTimeout: TimeAmount? = nil, idleTimeout: TimeAmount? = nil,
                tooLarge: HTTPServerReply = .text(413, "request body too large")) {
        self.maxBodyBytes = maxBodyBytes
        self.requestTimeout = requestTimeout
        self.idleTimeout = idleTimeout
        self.tooLarge = tooLarge
    }

    /// Nothing limited.
    public static let none = HTTPServerLimits()
}

/// A small HTTP/1.1 server on SwiftNIO: keep-alive, pipelining handled by NIO, one async handler
/// for every request. It is the transport of the OpenAI-compatible server (`ChatCompletionsServer`)
/// and of the download tests' file server; it binds where it is told (tests use 127.0.0.1, port 0).
public final class HTTPServer: Sendable {
    public typealias Handler = @Sendable (HTTPServerRequest) async -> HTTPServerReply

    public let host: String
    public let port: Int
    private let channel: Channel
    private let group: MultiThreadedEventLoopGroup
    private let replies: Locked<Int>

    /// Requests received whose replies are not yet completely written (streams included).
    public var repliesInProgress: Int { replies.snapshot }

    /// Binds and starts serving. `port` 0 picks a free port (read it from `port`).
    public static func start(host: String = "127.0.0.1", port: Int = 0, threads: Int = 1, limits: HTTPServerLimits = .none,
                             handler: @escaping Handler) async throws -> HTTPServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        let replies = Locked(0)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                    channel.pipeline.addHandler(RequestHandler(handler: handler, limits: limits, replies: replies))
                }
            }
        do {
            let channel = try await bootstrap.bind(host: host, port: port).get()
            let bound = channel.localAddress?.port ?? port
            return HTTPServer(host: host, port: bound, channel: channel, group: group, replies: replies)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private init(host: String, port: Int, channel: Channel, group: MultiThreadedEventLoopGroup, replies: Locked<Int>) {
        self.host = host
        self.port = port
        self.channel = channel
        self.group = group
        self.replies = replies
    }

    /// `http://host:port`.
    public var baseURL: String { "http://\(host):\(port)" }

    /// Stops accepting new connections; open ones carry on (graceful shutdown, SIGTERM).
    public func stopAccepting() async {
        try? await channel.close()
    }

    /// Stops accepting, closes open connections (hung ones included) and releases the threads.
    public func shutdown() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

/// Collects a request, runs the handler off the event loop, writes the reply back on it. It
/// enforces the connection's limits, and cancels the handler's task when the client goes away,
/// so work done for a vanished client stops.
private final class RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let handler: HTTPServer.Handler
    private let limits: HTTPServerLimits
    private let replies: Locked<Int>
    // Event-loop state.
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var bodyBytes = 0
    /// The rest of this request is ignored: it was refused (too large) and the connection closes.
    private var refused = false
    /// A reply is being produced or written; no timer runs meanwhile.
    private var busy = false
    private var timer: Scheduled<Void>?
    private var inFlight: Task<Void, Never>?

    init(handler: @escaping HTTPServer.Handler, limits: HTTPServerLimits, replies: Locked<Int>) {
        self.handler = handler
        self.limits = limits
        self.replies = replies
    }

    func channelActive(context: ChannelHandlerContext) {
        armTimer(context: context, timeout: limits.requestTimeout ?? limits.idleTimeout)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        inFlight?.cancel()
        context.fireChannelInactive()
    }

    private func armTimer(context: ChannelHandlerContext, timeout: TimeAmount?) {
        timer?.cancel()
        timer = nil
        guard let timeout else { return }
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) { [weak self] in
            guard let self, !self.busy else { return }
            if self.head != nil {
                Self.write(.text(408, "request timed out"), channel: bound.value.channel, keepAlive: false, version: .http1_1)
            } else {
                bound.value.close(promise: nil)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = nil
            bodyBytes = 0
            if head.headers.contains(name: "content-length") || head.headers.contains(name: "transfer-encoding") {
                // A request has begun: it gets the request timeout, not the idle one.
                armTimer(context: context, timeout: limits.requestTimeout)
            }
            if let max = limits.maxBodyBytes, let declared = head.headers.first(name: "content-length").flatMap(Int.init), declared > max {
                refuse(context: context)
            }
        case .body(var chunk):
            guard !refused else { return }
            bodyBytes += chunk.readableBytes
            if let max = limits.maxBodyBytes, bodyBytes > max {
                body = nil
                return refuse(context: context)
            }
            if var collected = body {
                collected.writeBuffer(&chunk)
                body = collected
            } else {
                body = chunk
            }
        case .end:
            guard let head, !refused else { return }
            self.head = nil
            timer?.cancel()
            busy = true
            var headers: [String: String] = [:]
            for (name, value) in head.headers { headers[name.lowercased()] = value }
            let bytes = body.map { Data($0.readableBytesView) } ?? Data()
            body = nil
            let request = HTTPServerRequest(method: head.method.rawValue, uri: head.uri, headers: headers, body: bytes)
            let keepAlive = head.isKeepAlive
            let version = head.version
            let channel = context.channel
            let handler = self.handler
            let loop = context.eventLoop
            let bound = NIOLoopBound(context, eventLoop: loop)
            let replies = self.replies
            replies.withLock { $0 += 1 }
            inFlight = Task {
                let reply = await handler(request)
                if case .stream(let status, let headers, let chunks, let onAbort) = reply {
                    await Self.stream(status: status, headers: headers, chunks: chunks, onAbort: onAbort, channel: channel,
                                      keepAlive: keepAlive, version: version)
                } else {
                    loop.execute { Self.write(reply, channel: channel, keepAlive: keepAlive, version: version) }
                }
                replies.withLock { $0 -= 1 }
                loop.execute {
                    self.busy = false
                    self.inFlight = nil
                    if keepAlive { self.armTimer(context: bound.value, timeout: self.limits.idleTimeout) }
                }
            }
        }
    }

    /// Answers a too-large request at once and closes the connection.
    private func refuse(context: ChannelHandlerContext) {
        refused = true
        busy = true
        timer?.cancel()
        Self.write(limits.tooLarge, channel: context.channel, keepAlive: false, version: head?.version ?? .http1_1)
    }

    private static func responseHead(_ status: Int, _ headers: [(String, String)], length: Int?, keepAlive: Bool,
                                     version: HTTPVersion) -> HTTPResponseHead {
        var fields = HTTPHeaders(headers)
        if let length {
            fields.replaceOrAdd(name: "Content-Length", value: String(length))
        } else {
            fields.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
        }
        fields.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        return HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status), headers: fields)
    }

    private static func write(_ reply: HTTPServerReply, channel: Channel, keepAlive: Bool, version: HTTPVersion) {
        func head(_ status: Int, _ headers: [(String, String)], length: Int) -> HTTPResponseHead {
            responseHead(status, headers, length: length, keepAlive: keepAlive, version: version)
        }
        switch reply {
        case .hang:
            return
        case .closeAfter(let seconds):
            channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(max(0, seconds) * 1e9))) { channel.close(promise: nil) }
        case .trickle(let status, let headers, let body, let interval):
            channel.writeAndFlush(HTTPServerResponsePart.head(head(status, headers, length: body.count)), promise: nil)
            trickle(Array(body), from: 0, every: .nanoseconds(Int64(max(0.001, interval) * 1e9)), channel: channel)
        case .headersOnly(let status, let headers, let announced):
            channel.writeAndFlush(HTTPServerResponsePart.head(head(status, headers, length: announced)), promise: nil)
        case .truncatedChunked(let status, let headers, let body, let bytes):
            var fields = HTTPHeaders(headers)
            fields.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
            fields.remove(name: "Content-Length")
            channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status),
                                                                       headers: fields)), promise: nil)
            var buffer = channel.allocator.buffer(capacity: bytes)
            buffer.writeBytes(body.prefix(max(0, bytes)))
            // NIO frames a body part as one chunk; closing before `.end` leaves out the 0-length chunk.
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer))).whenComplete { _ in channel.close(promise: nil) }
        case .dropConnection:
            channel.close(promise: nil)
        case .response(let status, let headers, let body):
            channel.write(HTTPServerResponsePart.head(head(status, headers, length: body.count)), promise: nil)
            var buffer = channel.allocator.buffer(capacity: body.count)
            buffer.writeBytes(body)
            channel.write(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
            let done = channel.writeAndFlush(HTTPServerResponsePart.end(nil))
            if !keepAlive { done.whenComplete { _ in channel.close(promise: nil) } }
        case .truncatedBody(let status, let headers, let body, let bytes):
            channel.write(HTTPServerResponsePart.head(head(status, headers, length: body.count)), promise: nil)
            var buffer = channel.allocator.buffer(capacity: bytes)
            buffer.writeBytes(body.prefix(max(0, bytes)))
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer))).whenComplete { _ in channel.close(promise: nil) }
        case .stream(_, _, _, let onAbort):
            // Streams are written by `stream(…)`; one reaching here has nowhere to go.
            onAbort()
            channel.close(promise: nil)
        }
    }

    /// Writes a streamed reply, waiting for each piece to be written (a slow reader slows the
    /// stream instead of filling memory); a failed write means the client left.
    private static func stream(status: Int, headers: [(String, String)], chunks: AsyncStream<Data>, onAbort: @Sendable () -> Void,
                               channel: Channel, keepAlive: Bool, version: HTTPVersion) async {
        let head = responseHead(status, headers, length: nil, keepAlive: keepAlive, version: version)
        do {
            try await channel.writeAndFlush(HTTPServerResponsePart.head(head)).get()
            for await chunk in chunks {
                var buffer = channel.allocator.buffer(capacity: chunk.count)
                buffer.writeBytes(chunk)
                try await channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer))).get()
            }
            if Task.isCancelled {
                onAbort()
                return
            }
            try await channel.writeAndFlush(HTTPServerResponsePart.end(nil)).get()
            if !keepAlive { try? await channel.close() }
        } catch {
            onAbort()
            try? await channel.close()
        }
    }

    /// One byte per tick, bounded by the body's length, stopping as soon as the client has gone.
    private static func trickle(_ bytes: [UInt8], from index: Int, every interval: TimeAmount, channel: Channel) {
        guard index < bytes.count else {
            channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
            return
        }
        channel.eventLoop.scheduleTask(in: interval) {
            guard channel.isActive else { return }
            var buffer = channel.allocator.buffer(capacity: 1)
            buffer.writeInteger(bytes[index])
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer))).whenComplete { result in
                if case .success = result { trickle(bytes, from: index + 1, every: interval, channel: channel) }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
