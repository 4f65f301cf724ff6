import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

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
    case cancelled
    case other(String)

    /// The error kind recorded on a response that failed this way.
    public var kind: String {
        switch self {
        case .timeout: return "timeout"
        case .connection: return "connection"
        case .cancelled: return "cancelled"
        case .other: return "transport"
        }
    }

    public var description: String {
        switch self {
        case .timeout(let m), .connection(let m), .other(let m): return m
        case .cancelled: return "cancelled"
        }
    }
}

/// Sends one HTTP request. A seam so the backend's retry logic does not depend on the client
/// library, and so a different client can be put in where it pays off.
public protocol HTTPTransport: Sendable {
    func send(method: String, url: URL, headers: [String: String], body: Data?, timeout: TimeInterval) async
        -> Result<HTTPResult, TransportFailure>
}

/// Foundation's URLSession (libcurl on Linux): HTTP/1.1 keep-alive connection reuse, TLS and
/// proxies from the system, and no package to build.
public final class URLSessionTransport: HTTPTransport {
    private let session: URLSession

    /// `connectionsPerHost` caps the sockets to one server; set it to the backend's maximum
    /// concurrency so the limit the backend chooses is the one in force.
    public init(connectionsPerHost: Int, timeout: TimeInterval) {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = max(1, connectionsPerHost)
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = max(timeout, 1) * 4
        session = URLSession(configuration: configuration)
    }

    deinit {
        session.invalidateAndCancel()
    }

    public func send(method: String, url: URL, headers: [String: String], body: Data?, timeout: TimeInterval) async
        -> Result<HTTPResult, TransportFailure>
    {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = body
        do {
            let (data, response) = try await session.data(for: request)
            guard let http = response as? HTTPURLResponse else {
                return .failure(.other("not an HTTP response from \(url.absoluteString)"))
            }
            var fields: [String: String] = [:]
            for (name, value) in http.allHeaderFields {
                if let name = name as? String, let value = value as? String { fields[name.lowercased()] = value }
            }
            return .success(HTTPResult(status: http.statusCode, headers: fields, body: data))
        } catch let error as URLError {
            let place = "\(method) \(url.absoluteString)"
            switch error.code {
            case .timedOut:
                return .failure(.timeout("no complete response within \(timeout) s (\(place))"))
            case .cancelled:
                return Task.isCancelled ? .failure(.cancelled) : .failure(.connection("request cancelled by the client library (\(place))"))
            case .networkConnectionLost, .cannotConnectToHost, .notConnectedToInternet, .cannotFindHost,
                 .badServerResponse, .zeroByteResource, .secureConnectionFailed, .dnsLookupFailed, .resourceUnavailable:
                return .failure(.connection("\(Self.describe(error.code)) (\(place))"))
            default:
                return .failure(.other("URL error \(error.code.rawValue) (\(place))"))
            }
        } catch is CancellationError {
            return .failure(.cancelled)
        } catch {
            return .failure(.other("\(error) (\(method) \(url.absoluteString))"))
        }
    }

    static func describe(_ code: URLError.Code) -> String {
        switch code {
        case .networkConnectionLost: return "connection lost"
        case .cannotConnectToHost: return "cannot connect to host"
        case .notConnectedToInternet: return "not connected"
        case .cannotFindHost, .dnsLookupFailed: return "cannot resolve host"
        case .badServerResponse: return "bad or incomplete server response"
        case .zeroByteResource: return "empty response"
        case .secureConnectionFailed: return "TLS handshake failed"
        default: return "URL error \(code.rawValue)"
        }
    }
}
