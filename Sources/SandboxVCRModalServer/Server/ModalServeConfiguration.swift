import Foundation
public import SandboxVCR
public import SandboxVCRWebUI

/// How `serve --modal-port` answers Modal's API.
public struct ModalServeConfiguration: Sendable {
    /// The address to listen on (loopback unless the caller allowed otherwise).
    public var host = "127.0.0.1"
    /// The port; 0 picks a free one.
    public var port = 0
    /// `never` replays only; `missing` replays what a sandbox's first exec binds and records the rest; `all`
    /// records every sandbox; `live` forwards without recording.
    public var mode: RecordMode = .never
    /// The Modal API that records go through, e.g. `https://api.modal.com` (`nil`: replay only).
    public var upstreamURL: String?
    /// Credentials for upstream calls whose client sent none (`MODAL_TOKEN_ID` / `MODAL_TOKEN_SECRET`); a client's
    /// own `x-modal-token-*` headers win.
    public var fallbackTokenID: String?
    public var fallbackTokenSecret: String?
    /// Rewrites of exec values before matching (`--normalize REGEX=REPLACEMENT`).
    public var normalizers: [String] = []
    /// How long a call in flight may still run after shutdown starts.
    public var shutdownGrace: Duration = .seconds(10)
    /// Per-test cassettes (`serve --control`): the cassette and record mode come from ``ModalServer/activate(_:)``,
    /// not from ``mode``; with an ``upstreamURL``, control-plane calls are forwarded and tests may record.
    public var followsControl = false
    /// `serve`'s dashboard history: each exec is added to it, under its sandbox.
    public var dashboard: RequestJournal?

    public init() {}

    /// Whether this configuration forwards anything to an upstream.
    public var forwards: Bool { followsControl ? upstreamURL != nil : mode != .never }
}

/// A failure of `serve --modal-port` itself (not of a call it answers).
public struct ModalServeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of failure. An open set: compare with the static members.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// A flag or value that cannot work (a bad `--normalize`, a record mode without an upstream).
        public static let configuration = Code(rawValue: "configuration")
        /// The gRPC server could not listen.
        public static let listen = Code(rawValue: "listen")
    }

    public var code: Code
    /// What happened and what to do about it.
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
