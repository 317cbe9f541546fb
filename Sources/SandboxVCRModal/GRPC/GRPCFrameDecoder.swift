public import Foundation
import Synchronization

/// Splits a gRPC body that arrives in pieces into whole messages, holding at most one partial frame.
public final class GRPCFrameDecoder: Sendable {
    private struct State {
        var buffer = Data()
        var failure: GRPCStatusError?
    }

    private let state = Mutex(State())
    private let onMessage: @Sendable (Data) -> Void

    /// - Parameter onMessage: called with each whole message, in order (on the caller's thread of ``feed(_:)``).
    public init(onMessage: @escaping @Sendable (Data) -> Void) {
        self.onMessage = onMessage
    }

    /// Takes the next piece of the body and delivers the messages it completes.
    public func feed(_ piece: Data) {
        let messages = state.withLock { state -> [Data] in
            guard state.failure == nil else { return [] }
            state.buffer.append(piece)
            do {
                let (messages, incomplete) = try GRPCFraming.messages(in: state.buffer)
                state.buffer = Data(state.buffer.suffix(incomplete))
                return messages
            } catch {
                state.failure = error as? GRPCStatusError
                state.buffer = Data()
                return []
            }
        }
        for message in messages { onMessage(message) }
    }

    /// A framing failure seen so far (a compressed message), if any.
    public var failure: GRPCStatusError? { state.withLock { $0.failure } }
    /// Bytes of an incomplete last frame.
    public var pendingBytes: Int { state.withLock { $0.buffer.count } }
}
