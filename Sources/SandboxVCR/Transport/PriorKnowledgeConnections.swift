/// Which requests over cleartext HTTP/2 with prior knowledge (h2c) may open a connection, on a libcurl before 8.0.
///
/// Such a libcurl breaks a reused h2c connection: asked for prior knowledge on a connection that already speaks
/// HTTP/2, it stacks a second HTTP/2 layer on it and the request fails with curl 16, "Error in the HTTP2 framing
/// layer" (https://github.com/curl/curl/issues/10634, fixed in 8.0.0 by https://github.com/curl/curl/pull/10643).
/// It only switches to HTTP/2 for a request that asks for prior knowledge, so, per origin:
/// - one *opener* at a time asks for prior knowledge, on a fresh connection; that connection speaks HTTP/2 once the
///   opener has sent its request, and stays in the cache for the others;
/// - every other request *rides*: it asks for plain HTTP/2 (no second switch on a reused connection) and may not
///   open a connection (``TransferTable`` makes its open-socket callback refuse), so it multiplexes on an open one,
///   or fails before sending a byte and is admitted again (``riderFoundNoConnection(_:)``);
/// - a request that comes while an opener has not sent its request yet waits here until it has.
///
/// Used on the loop thread only.
final class PriorKnowledgeConnections {
    enum Role {
        case opener
        case rider
    }

    private struct Origin {
        var hasConnection = false
        var opener: UInt64?
        var waiting: [CurlMultiLoop.Start] = []
    }

    private var origins: [Substring: Origin] = [:]

    /// The role of a request about to start, or `nil` when it must wait (it is kept here until released).
    func admit(_ start: CurlMultiLoop.Start) -> Role? {
        let key = Self.origin(of: start.request.url)
        var origin = origins[key, default: Origin()]
        defer { origins[key] = origin }
        if origin.hasConnection { return .rider }
        if origin.opener != nil {
            origin.waiting.append(start)
            return nil
        }
        origin.opener = start.id
        return .opener
    }

    /// The ids of openers that have not yet been reported as having sent their request.
    var openersInFlight: [UInt64] { origins.values.compactMap(\.opener) }

    /// The origin's opener `id` sent its request: its connection speaks HTTP/2 now. Returns the requests to start
    /// (as riders); none when `id` is not the origin's opener.
    func openerSentItsRequest(id: UInt64, url: String) -> [CurlMultiLoop.Start] {
        let key = Self.origin(of: url)
        guard var origin = origins[key], origin.opener == id else { return [] }
        origin.opener = nil
        origin.hasConnection = true
        let released = origin.waiting
        origin.waiting = []
        origins[key] = origin
        return released
    }

    /// The origin's opener `id` ended before it sent its request (it failed to connect, or was cancelled). Returns
    /// the requests to admit again (the first becomes the next opener, the others wait for it); none when `id` is
    /// not the origin's opener.
    func openerEndedUnsent(id: UInt64, url: String) -> [CurlMultiLoop.Start] {
        let key = Self.origin(of: url)
        guard var origin = origins[key], origin.opener == id else { return [] }
        origin.opener = nil
        let released = origin.waiting
        origin.waiting = []
        origins[key] = origin
        return released
    }

    /// A rider found no connection to ride (the origin's connections closed, or all their streams are busy): the
    /// next request admitted for the origin opens one.
    func riderFoundNoConnection(_ url: String) {
        origins[Self.origin(of: url)]?.hasConnection = false
    }

    /// Removes the waiting request `id`, if any.
    func removeWaiting(id: UInt64) -> CurlMultiLoop.Start? {
        for (key, var origin) in origins {
            guard let index = origin.waiting.firstIndex(where: { $0.id == id }) else { continue }
            let start = origin.waiting.remove(at: index)
            origins[key] = origin
            return start
        }
        return nil
    }

    /// Removes the waiting requests whose deadline passed (or every one, with `now` `nil`).
    func expireWaiting(now: ContinuousClock.Instant?) -> [CurlMultiLoop.Start] {
        var expired: [CurlMultiLoop.Start] = []
        for (key, var origin) in origins where !origin.waiting.isEmpty {
            origin.waiting.removeAll { start in
                if let now, start.deadline.map({ $0 > now }) ?? true { return false }
                expired.append(start)
                return true
            }
            origins[key] = origin
        }
        return expired
    }

    /// Scheme, host and port: `http://127.0.0.1:8080` of `http://127.0.0.1:8080/a/b`.
    static func origin(of url: String) -> Substring {
        guard let schemeEnd = url.firstRange(of: "://") else { return url[...] }
        let rest = url[schemeEnd.upperBound...]
        return url[..<(rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex)]
    }
}
