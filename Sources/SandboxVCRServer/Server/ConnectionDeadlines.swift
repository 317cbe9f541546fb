internal import Logging
internal import NIOCore
internal import NIOHTTPTypes

/// When one HTTP/1 connection must next make progress, and what it is waiting for then: the pure state behind
/// ``ConnectionDeadlineHandler`` (times are passed in, so it is tested without a clock).
///
/// Only the client is timed. While a request that was read completely is still unanswered (a slow upstream, a
/// queue at ``ServeConfiguration/maxConcurrency``, pipelined requests behind it), nothing runs out; when the
/// last answer ends, the phase the client is in starts over from then.
struct ConnectionDeadlineState {
    /// What the server waits for from the client.
    enum Phase: Hashable, Sendable, CustomStringConvertible {
        /// A request: none is in progress.
        case idle
        /// The rest of a request head whose first bytes arrived.
        case head
        /// The rest of a request body.
        case body

        var description: String {
            switch self {
            case .idle: "idle"
            case .head: "request head"
            case .body: "request body"
            }
        }
    }

    /// The limits; `nil` is none.
    struct Limits: Hashable, Sendable {
        var idle: TimeAmount?
        var head: TimeAmount?
        var body: TimeAmount?

        init(idle: TimeAmount?, head: TimeAmount?, body: TimeAmount?) {
            self.idle = idle
            self.head = head
            self.body = body
        }

        init(_ configuration: ServeConfiguration) {
            self.init(
                idle: configuration.idleTimeout.map(TimeAmount.init),
                head: configuration.requestHeadTimeout.map(TimeAmount.init),
                body: configuration.requestBodyTimeout.map(TimeAmount.init))
        }

        /// The limit of `phase`.
        subscript(phase: Phase) -> TimeAmount? {
            switch phase {
            case .idle: idle
            case .head: head
            case .body: body
            }
        }
    }

    let limits: Limits
    private(set) var phase = Phase.idle
    /// When the client started owing the current phase (or the server stopped being the slow one).
    private var phaseStart: NIODeadline
    /// The last time a write reached the socket: an answer still being sent to a slow reader is not idle.
    private var lastWrite: NIODeadline
    /// Requests whose head arrived and whose answer has not ended.
    private var unanswered = 0
    /// Whether the oldest unanswered request's answer has begun (its head was written).
    private(set) var isAnswerStarted = false

    init(limits: Limits, now: NIODeadline) {
        self.limits = limits
        self.phaseStart = now
        self.lastWrite = now
    }

    /// Whether a request that was read completely is still unanswered: then the server, not the client, is slow.
    var isServerBusy: Bool { unanswered > (phase == .body ? 1 : 0) }

    /// When the client runs out of time, and in which phase; `nil` while nothing is timed.
    var deadline: (phase: Phase, at: NIODeadline)? {
        guard !isServerBusy, let limit = limits[phase] else { return nil }
        let start = phase == .idle ? max(phaseStart, lastWrite) : phaseStart
        return (phase, start + limit)
    }

    /// Whether the request that ran out of time may still be answered (408): it has no answer yet, not even one
    /// sent before its body ended (a 413).
    var mayAnswerTimeout: Bool {
        switch phase {
        case .idle: false
        case .head: unanswered == 0
        case .body: unanswered == 1 && !isAnswerStarted
        }
    }

    /// The phase whose deadline has passed at `now`, if one has.
    func expired(at now: NIODeadline) -> Phase? {
        guard let deadline, now >= deadline.at else { return nil }
        return deadline.phase
    }

    /// Bytes of a request arrived (not only line breaks, which a parser skips between requests).
    mutating func requestBytesArrived(now: NIODeadline) {
        guard phase == .idle else { return }
        phase = .head
        phaseStart = now
    }

    mutating func headReceived(now: NIODeadline) {
        unanswered += 1
        phase = .body
        phaseStart = now
    }

    mutating func endReceived(now: NIODeadline) {
        phase = .idle
        phaseStart = now
    }

    mutating func answerHeadWritten() {
        isAnswerStarted = true
    }

    mutating func answerEnded(now: NIODeadline) {
        let wasBusy = isServerBusy
        unanswered = max(0, unanswered - 1)
        isAnswerStarted = false
        if wasBusy, !isServerBusy { phaseStart = now }
    }

    mutating func writeCompleted(now: NIODeadline) {
        lastWrite = now
    }
}

/// Closes a connection whose client is too slow: idle for ``ServeConfiguration/idleTimeout``, a request head not
/// complete within ``ServeConfiguration/requestHeadTimeout`` of its first byte, or a body not complete within
/// ``ServeConfiguration/requestBodyTimeout`` of the head (see ``ConnectionDeadlineState``).
///
/// It sits first in the pipeline, on the raw bytes (where a head still arriving is visible); an
/// ``HTTPExchangeObserver`` after the HTTP codec tells it where each request and answer begins and ends. An idle
/// connection is just closed. A late head or body is answered `408 Request Timeout` (unless it was answered
/// already) with `Connection: close`; then the output is shut, and what the client still sends is read and dropped
/// for up to ``lingerTime`` (so the 408 is not lost to a reset) before the connection is closed.
final class ConnectionDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// How long a connection answered 408 keeps draining what its client sends before it is closed.
    static let lingerTime = TimeAmount.seconds(2)

    private var state: ConnectionDeadlineState
    private let logger: Logger
    private var context: ChannelHandlerContext?
    /// The scheduled check; it may be earlier than the current deadline (it then schedules the next one).
    private var timer: (at: NIODeadline, task: Scheduled<Void>)?
    private var isLingering = false

    init(limits: ConnectionDeadlineState.Limits, logger: Logger) {
        self.state = ConnectionDeadlineState(limits: limits, now: .now())
        self.logger = logger
    }

    // MARK: Events from the HTTP codec (``HTTPExchangeObserver``)

    func headReceived() { update { $0.headReceived(now: .now()) } }
    func endReceived() { update { $0.endReceived(now: .now()) } }
    func answerHeadWritten() { state.answerHeadWritten() }
    func answerEnded() { update { $0.answerEnded(now: .now()) } }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        update { _ in }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        update { _ in }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if isLingering { return }
        if state.phase == .idle, unwrapInboundIn(data).readableBytesView.contains(where: { $0 != 13 && $0 != 10 }) {
            update { $0.requestBytesArrived(now: .now()) }
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if isLingering, let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let promise = promise ?? context.eventLoop.makePromise()
        promise.futureResult.assumeIsolated().whenSuccess { [self] in
            state.writeCompleted(now: .now())
        }
        context.write(data, promise: promise)
    }

    // MARK: The timer

    /// Changes the state, then makes sure a check is scheduled no later than the new deadline.
    private func update(_ change: (inout ConnectionDeadlineState) -> Void) {
        change(&state)
        guard let context, context.channel.isActive, !isLingering, let deadline = state.deadline else { return }
        if let timer, timer.at <= deadline.at { return }
        cancelTimer()
        let task = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline.at) { [self] in
            timer = nil
            check()
        }
        timer = (deadline.at, task)
    }

    private func cancelTimer() {
        timer?.task.cancel()
        timer = nil
    }

    private func check() {
        guard let context, context.channel.isActive, !isLingering else { return }
        guard let phase = state.expired(at: .now()) else {
            update { _ in }
            return
        }
        let limit = state.limits[phase].map(Self.describe) ?? "its limit"
        let peer = "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")"
        switch phase {
        case .idle:
            logger.debug("closing an idle connection", metadata: ["peer": "\(peer)", "idle_timeout": "\(limit)"])
            context.close(promise: nil)
        case .head, .body:
            logger.info(
                "closing a connection: the \(phase) did not arrive in time",
                metadata: ["peer": "\(peer)", "timeout": "\(limit)", "status": "408"])
            timeOut(context: context, detail: "Request Timeout: the \(phase) did not arrive within \(limit)")
        }
    }

    /// `10 s`, `0.25 s`.
    static func describe(_ amount: TimeAmount) -> String {
        let nanoseconds = amount.nanoseconds
        if nanoseconds % 1_000_000_000 == 0 { return "\(nanoseconds / 1_000_000_000) s" }
        return "\(Double(nanoseconds) / 1e9) s"
    }

    /// Answers 408 (unless the request was answered already), shuts the output and drains the input for a while.
    private func timeOut(context: ChannelHandlerContext, detail: String) {
        isLingering = true
        guard state.mayAnswerTimeout else {
            context.close(promise: nil)
            return
        }
        let body = #"{"detail":"\#(detail)"}"#
        let text =
            "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n"
            + "connection: close\r\n\r\n\(body)"
        let buffer = context.channel.allocator.buffer(string: text)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
        context.close(mode: .output, promise: nil)
        context.eventLoop.assumeIsolated().scheduleTask(in: Self.lingerTime) {
            context.close(promise: nil)
        }
    }
}

/// Tells a ``ConnectionDeadlineHandler`` where each request and answer of its connection begins and ends; it sits
/// after the HTTP codec and passes everything on unchanged.
final class HTTPExchangeObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let deadlines: ConnectionDeadlineHandler

    init(deadlines: ConnectionDeadlineHandler) {
        self.deadlines = deadlines
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: deadlines.headReceived()
        case .body: break
        case .end: deadlines.endReceived()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head: deadlines.answerHeadWritten()
        case .body: break
        case .end: deadlines.answerEnded()
        }
        context.write(data, promise: promise)
    }
}

@available(*, unavailable)
extension ConnectionDeadlineHandler: Sendable {}

@available(*, unavailable)
extension HTTPExchangeObserver: Sendable {}
