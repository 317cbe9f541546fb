internal import Logging
internal import NIOCore

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// Stops the listening socket from spinning when `accept` fails for want of file descriptors (`EMFILE`, `ENFILE`)
/// or memory (`ENOBUFS`, `ENOMEM`), and accepts again once the pressure may be gone.
///
/// SwiftNIO's `AcceptBackoffHandler` (which the bootstrap installs) only delays the next read: the failed accept
/// leaves NIO's read pending, so the socket stays registered with epoll, the waiting connection keeps it readable,
/// and the event loop calls `accept` again at once, thousands of times a second. This handler, first in the server
/// channel's pipeline, turns reading off (`autoRead`, which drops the registration) for a back-off that starts at
/// ``initialBackoff`` and doubles up to ``maximumBackoff``, holds the reads asked for meanwhile, then turns reading
/// back on. The connections waiting in the backlog are accepted as soon as descriptors are free again.
///
/// While it accepts, it holds ``reservedDescriptors`` descriptors back (open on `/dev/null`) and closes them when it
/// pauses, so that the rest of the process still finds some when connections have taken all the others: SQLite,
/// the log, and the dispatch thread pool, which stops the whole process when it cannot open `/proc` (which it does
/// when work waits for a thread, as on a loaded machine). It accepts again only once it has them back.
final class AcceptPauseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel
    typealias OutboundIn = any Channel

    static let initialBackoff = TimeAmount.milliseconds(100)
    static let maximumBackoff = TimeAmount.seconds(1)
    /// The descriptors kept for the rest of the process while connections are refused.
    static let reservedDescriptors = 16

    private let logger: Logger
    private var backoff = AcceptPauseHandler.initialBackoff
    private var resumption: Scheduled<Void>?
    /// Whether `autoRead` was on before the pause (it is restored at the end).
    private var wasAutoRead = true
    /// Whether the current shortage was logged (once, until an accept succeeds).
    private var isShortageLogged = false
    /// The held-back descriptors (fewer only while paused, or when the process started without them).
    private var reserve: [Int32] = []

    init(logger: Logger) {
        self.logger = logger
    }

    /// Whether `error` is an accept failure that may pass.
    static func isRecoverable(_ error: any Error) -> Bool {
        guard let error = error as? IOError else { return false }
        return [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        _ = acquireReserve()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if Self.isRecoverable(error) { pause(context: context, error: error) }
        context.fireErrorCaught(error)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        backoff = Self.initialBackoff
        if isShortageLogged {
            isShortageLogged = false
            logger.notice("accepting connections again")
        }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        // Held while paused: the resumption reads.
        if resumption == nil { context.read() }
    }

    func channelInactive(context: ChannelHandlerContext) {
        resumption?.cancel()
        resumption = nil
        releaseReserve()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        releaseReserve()
        if let resumption {
            resumption.cancel()
            self.resumption = nil
            context.read()
        }
    }

    private func pause(context: ChannelHandlerContext, error: any Error) {
        guard resumption == nil, let options = context.channel.syncOptions else { return }
        if !isShortageLogged {
            isShortageLogged = true
            let text =
                "cannot accept connections: \(error); retrying with a back-off until descriptors are free "
                + "(raise `ulimit -n`, or let idle connections time out)"
            logger.warning("\(text)")
        }
        do {
            // Turning autoRead off unregisters the socket; it must be on first for the change to take effect.
            wasAutoRead = try options.getOption(ChannelOptions.autoRead)
            if !wasAutoRead { try options.setOption(ChannelOptions.autoRead, value: true) }
            try options.setOption(ChannelOptions.autoRead, value: false)
        } catch {
            return
        }
        releaseReserve()
        scheduleResumption(context: context)
    }

    /// Accepts again after the back-off, once the reserve is whole again (else waits another back-off).
    private func scheduleResumption(context: ChannelHandlerContext) {
        let delay = backoff
        backoff = min(backoff * 2, Self.maximumBackoff)
        resumption = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            resumption = nil
            guard acquireReserve() else {
                releaseReserve()
                scheduleResumption(context: context)
                return
            }
            if wasAutoRead {
                try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
            } else {
                context.read()
            }
        }
    }

    /// Opens the reserve's missing descriptors; whether it is whole.
    private func acquireReserve() -> Bool {
        while reserve.count < Self.reservedDescriptors {
            let descriptor = open("/dev/null", O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { return false }
            reserve.append(descriptor)
        }
        return true
    }

    private func releaseReserve() {
        for descriptor in reserve {
            #if canImport(Glibc)
                _ = Glibc.close(descriptor)
            #else
                _ = Darwin.close(descriptor)
            #endif
        }
        reserve.removeAll()
    }
}

@available(*, unavailable)
extension AcceptPauseHandler: Sendable {}
