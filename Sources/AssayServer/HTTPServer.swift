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

    public static func json(_ status: Int, _ body: Data, headers: [(String, String)] = []) -> HTTPServerReply {
        .response(status: status, headers: [("Content-Type", "application/json")] + headers, body: body)
    }

    public static func text(_ status: Int, _ text: String) -> HTTPServerReply {
        .response(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")], body: Data(text.utf8))
    }
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

    /// Binds and starts serving. `port` 0 picks a free port (read it from `port`).
    public static func start(host: String = "127.0.0.1", port: Int = 0, threads: Int = 1, handler: @escaping Handler) async throws -> HTTPServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, threads))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 1024)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline(withErrorHandling: true).flatMap {
                    channel.pipeline.addHandler(RequestHandler(handler: handler))
                }
            }
        do {
            let channel = try await bootstrap.bind(host: host, port: port).get()
            let bound = channel.localAddress?.port ?? port
            return HTTPServer(host: host, port: bound, channel: channel, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private init(host: String, port: Int, channel: Channel, group: MultiThreadedEventLoopGroup) {
        self.host = host
        self.port = port
        self.channel = channel
        self.group = group
    }

    /// `http://host:port`.
    public var baseURL: String { "http://\(host):\(port)" }

    /// Stops accepting, closes open connections (hung ones included) and releases the threads.
    public func shutdown() async {
        try? await channel.close()
        try? await group.shutdownGracefully()
    }
}

/// Collects a request, runs the handler off the event loop, writes the reply back on it.
private final class RequestHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let handler: HTTPServer.Handler
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?

    init(handler: @escaping HTTPServer.Handler) {
        self.handler = handler
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = nil
        case .body(var chunk):
            if var collected = body {
                collected.writeBuffer(&chunk)
                body = collected
            } else {
                body = chunk
            }
        case .end:
            guard let head else { return }
            self.head = nil
            var headers: [String: String] = [:]
            for (name, value) in head.headers { headers[name.lowercased()] = value }
            let bytes = body.map { Data($0.readableBytesView) } ?? Data()
            body = nil
            let request = HTTPServerRequest(method: head.method.rawValue, uri: head.uri, headers: headers, body: bytes)
            let keepAlive = head.isKeepAlive
            let version = head.version
            let channel = context.channel
            let handler = self.handler
            Task {
                let reply = await handler(request)
                channel.eventLoop.execute {
                    Self.write(reply, channel: channel, keepAlive: keepAlive, version: version)
                }
            }
        }
    }

    private static func write(_ reply: HTTPServerReply, channel: Channel, keepAlive: Bool, version: HTTPVersion) {
        func head(_ status: Int, _ headers: [(String, String)], length: Int) -> HTTPResponseHead {
            var fields = HTTPHeaders(headers)
            fields.replaceOrAdd(name: "Content-Length", value: String(length))
            fields.replaceOrAdd(name: "Connection", value: keepAlive ? "keep-alive" : "close")
            return HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: status), headers: fields)
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
