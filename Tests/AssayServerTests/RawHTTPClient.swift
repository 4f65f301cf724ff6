import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A blocking HTTP/1.1 client over a plain socket to 127.0.0.1, for tests that must send bytes
/// no well-behaved client would (truncated bodies, invalid UTF-8, slow headers) and read exactly
/// what the server wrote back. Every call has a deadline; nothing here waits forever.
struct RawHTTPClient {
    let port: Int
    /// Seconds a read may wait for the server (generous: CI machines run other work beside it).
    var timeout: Double = 120

    /// A parsed response, or why the bytes were not one.
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: Data
        var text: String { String(decoding: body, as: UTF8.self) }
        func json() -> [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
    }

    enum Failure: Error, CustomStringConvertible {
        case connect(Int32)
        case closedWithoutResponse
        case malformed(String)
        case timedOut

        var description: String {
            switch self {
            case .connect(let e): return "connect failed (errno \(e))"
            case .closedWithoutResponse: return "the server closed the connection without a response"
            case .malformed(let why): return "malformed response: \(why)"
            case .timedOut: return "no complete response in time"
            }
        }
    }

    /// An open connection (used by one thread at a time).
    final class Connection: @unchecked Sendable {
        let fd: Int32
        var buffer = [UInt8]()
        let timeout: Double

        init(port: Int, timeout: Double) throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw Failure.connect(errno) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let ok = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard ok == 0 else {
                let e = errno
                close(fd)
                throw Failure.connect(e)
            }
            var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            self.timeout = timeout
            self.fd = fd
        }

        deinit { close(fd) }

        /// Ends the connection from this side (the socket is released in deinit).
        func hangUp() { shutdown(fd, Int32(SHUT_RDWR)) }

        /// Writes all bytes; false when the server has closed its side.
        @discardableResult
        func send(_ bytes: [UInt8]) -> Bool {
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return false }
                sent += n
            }
            return true
        }

        func send(_ text: String) -> Bool { send(Array(text.utf8)) }

        /// Reads more bytes into the buffer; false at end of stream, throws on timeout.
        func fill() throws -> Bool {
            var chunk = [UInt8](repeating: 0, count: 16 << 10)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                buffer += chunk[0..<n]
                return true
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { throw Failure.timedOut }
            return false
        }

        /// Reads until `marker` is in the buffer; returns the bytes before it and drops them and the marker.
        func read(until marker: [UInt8]) throws -> [UInt8]? {
            while true {
                if let r = buffer.firstRange(of: marker) {
                    let head = Array(buffer[..<r.lowerBound])
                    buffer.removeSubrange(..<r.upperBound)
                    return head
                }
                if try !fill() { return nil }
            }
        }

        func read(count: Int) throws -> [UInt8]? {
            while buffer.count < count { if try !fill() { return nil } }
            let out = Array(buffer[..<count])
            buffer.removeSubrange(..<count)
            return out
        }

        /// Reads one whole response, checking its framing (status line, headers, Content-Length
        /// or chunked body). `onChunk` sees each chunk of a chunked body as it arrives and may
        /// return false to stop reading (the caller then closes: a disconnect mid-stream).
        func readResponse(onChunk: (([UInt8]) -> Bool)? = nil) throws -> Response? {
            guard let headBytes = try read(until: Array("\r\n\r\n".utf8)) else {
                if buffer.isEmpty { return nil }
                throw Failure.malformed("the connection ended inside the response head")
            }
            guard let head = String(bytes: headBytes, encoding: .utf8) else { throw Failure.malformed("the head is not UTF-8") }
            var lines = head.components(separatedBy: "\r\n")
            let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
            guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]), (100...599).contains(status) else {
                throw Failure.malformed("bad status line in \(head.prefix(80))")
            }
            var headers: [String: String] = [:]
            for line in lines {
                guard let colon = line.firstIndex(of: ":") else { throw Failure.malformed("header line without a colon: \(line)") }
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            var body = [UInt8]()
            if headers["transfer-encoding"]?.lowercased() == "chunked" {
                while true {
                    guard let sizeLine = try read(until: Array("\r\n".utf8)),
                          let size = Int(String(decoding: sizeLine, as: UTF8.self).split(separator: ";")[0], radix: 16) else {
                        throw Failure.malformed("bad chunk size line")
                    }
                    if size == 0 {
                        _ = try read(until: Array("\r\n".utf8))
                        break
                    }
                    guard let chunk = try read(count: size), try read(count: 2) == Array("\r\n".utf8) else {
                        throw Failure.malformed("chunk cut short")
                    }
                    body += chunk
                    if let onChunk, !onChunk(chunk) { return Response(status: status, headers: headers, body: Data(body)) }
                }
            } else if let length = headers["content-length"].flatMap(Int.init) {
                guard let bytes = try read(count: length) else { throw Failure.malformed("body shorter than its Content-Length \(length)") }
                body = bytes
            } else if status != 204 && status != 304 && !(100..<200).contains(status) {
                // Close-delimited body.
                while try fill() {}
                body = buffer
                buffer = []
            }
            return Response(status: status, headers: headers, body: Data(body))
        }
    }

    func connect() throws -> Connection { try Connection(port: port, timeout: timeout) }

    /// One request on a fresh connection.
    func request(_ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:]) throws -> Response {
        let connection = try connect()
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        connection.send(Array(head.utf8) + Array(body ?? Data()))
        guard let response = try connection.readResponse() else { throw Failure.closedWithoutResponse }
        return response
    }

    /// POST of a JSON object.
    func post(_ path: String, json: [String: Any], headers: [String: String] = [:]) throws -> Response {
        try post(path, json: try JSONSerialization.data(withJSONObject: json), headers: headers)
    }

    /// POST of JSON bytes.
    func post(_ path: String, json body: Data, headers: [String: String] = [:]) throws -> Response {
        try request("POST", path, body: body, headers: headers.merging(["Content-Type": "application/json"]) { a, _ in a })
    }

    /// The `data:` payloads of a server-sent-events body.
    static func events(_ body: Data) -> [String] {
        String(decoding: body, as: UTF8.self).components(separatedBy: "\n\n").compactMap { block in
            block.hasPrefix("data: ") ? String(block.dropFirst(6)) : nil
        }
    }
}
