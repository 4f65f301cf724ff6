import Foundation

/// How a finished request should move an endpoint's concurrency limit.
public enum LoadSignal: Sendable, Hashable {
    /// Answered: grow the limit (additive increase).
    case success
    /// 429, a timeout or a refused connection: the server is saturated or down; halve the limit
    /// (multiplicative decrease).
    case overload
    /// Any other failure (5xx, malformed body): no evidence about load.
    case neutral
}

/// Permission to send one request to one endpoint; hand it back with `EndpointPool.release`.
public struct EndpointLease: Sendable, Hashable {
    public let endpoint: Int
    /// The endpoint's base URL.
    public let url: String
    /// The endpoint's decrease count when the lease was taken: an overload reported by a request
    /// that started before the last decrease says nothing new, so it does not halve again.
    let epoch: Int
}

/// The state of one endpoint's limit, for progress lines and tests.
public struct EndpointLoad: Sendable, Hashable {
    public var url: String
    public var limit: Double
    public var inFlight: Int
    public var decreases: Int
    public var completed: Int
}

/// Spreads requests over one or more endpoints and limits how many are in flight at each, with an
/// AIMD rule per endpoint: start at `initial`, grow by one per limit's worth of successes (doubling
/// per round trip until the first overload: slow start), halve on 429 or timeout, never below
/// `minimum` or above `maximum`. A request goes to the endpoint with the most free room, so a
/// slow or saturated server gets less work while the others take more.
public actor EndpointPool {
    struct Endpoint {
        var url: String
        var limit: Double
        var inFlight = 0
        var epoch = 0
        var slowStart = true
        var completed = 0
    }

    private var endpoints: [Endpoint]
    private var waiters: [CheckedContinuation<EndpointLease, Never>] = []
    public let minimum: Double
    public let maximum: Double

    public init(urls: [String], maximum: Int, initial: Int? = nil, minimum: Int = 1) {
        let maximum = Double(max(1, maximum))
        let minimum = min(Double(max(1, minimum)), maximum)
        let start = min(maximum, max(minimum, Double(initial ?? Int(min(maximum, 8)))))
        self.maximum = maximum
        self.minimum = minimum
        self.endpoints = urls.map { Endpoint(url: $0, limit: start) }
    }

    /// Waits until some endpoint has room, then takes a slot on the one with the most room.
    public func acquire() async -> EndpointLease {
        if let lease = tryAcquire() { return lease }
        return await withCheckedContinuation { continuation in
            waiters.append(continuation)
        }
    }

    private func tryAcquire() -> EndpointLease? {
        var best: Int?
        var bestRoom = 0.0
        for (index, endpoint) in endpoints.enumerated() {
            let room = endpoint.limit.rounded(.down) - Double(endpoint.inFlight)
            if room >= 1, room > bestRoom {
                best = index
                bestRoom = room
            }
        }
        guard let index = best else { return nil }
        endpoints[index].inFlight += 1
        return EndpointLease(endpoint: index, url: endpoints[index].url, epoch: endpoints[index].epoch)
    }

    /// Returns a slot and adjusts the endpoint's limit.
    public func release(_ lease: EndpointLease, _ signal: LoadSignal) {
        var endpoint = endpoints[lease.endpoint]
        endpoint.inFlight -= 1
        switch signal {
        case .success:
            endpoint.completed += 1
            // One full limit's worth of successes adds one (additive increase); in slow start
            // each success adds one, doubling the limit per round trip.
            endpoint.limit = min(maximum, endpoint.limit + (endpoint.slowStart ? 1 : 1 / endpoint.limit))
        case .overload:
            if lease.epoch == endpoint.epoch {
                endpoint.limit = max(minimum, (endpoint.limit / 2).rounded(.down))
                endpoint.epoch += 1
                endpoint.slowStart = false
            }
        case .neutral:
            break
        }
        endpoints[lease.endpoint] = endpoint
        while !waiters.isEmpty, let next = tryAcquire() {
            waiters.removeFirst().resume(returning: next)
        }
    }

    public var loads: [EndpointLoad] {
        endpoints.map { EndpointLoad(url: $0.url, limit: $0.limit, inFlight: $0.inFlight, decreases: $0.epoch, completed: $0.completed) }
    }
}
