public import Foundation

/// When a ``RecordingExecutor`` calls the live executor and records, named like swift-snapshot-testing's modes.
///
/// Resolved, in order, from: an explicit argument, the task-local ``current`` (set by the `.cassette` test
/// trait or ``withRecordMode(_:operation:isolation:)``), the `SANDBOX_VCR_RECORD` environment variable, then the default
/// `missing` (or `never` when the `CI` environment variable is set).
public struct RecordMode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Parses `never`, `missing`, `all` or `live`.
    public init?(_ text: String) {
        let mode = RecordMode(rawValue: text.lowercased())
        guard RecordMode.allModes.contains(mode) else { return nil }
        self = mode
    }

    public var description: String { rawValue }

    /// Replay only; a request with no recording is an error. No live executor is needed.
    public static let never = RecordMode(rawValue: "never")
    /// Replay what is recorded; call the live executor for the rest and record it.
    public static let missing = RecordMode(rawValue: "missing")
    /// Call the live executor for everything and replace what was recorded.
    public static let all = RecordMode(rawValue: "all")
    /// Pass every request through to the live executor; record and replay nothing.
    public static let live = RecordMode(rawValue: "live")

    /// Every mode, in order of strictness.
    public static let allModes: [RecordMode] = [.never, .missing, .all, .live]

    /// The mode set by the innermost `.cassette` trait or ``withRecordMode(_:operation:isolation:)``.
    @TaskLocal public static var current: RecordMode?

    /// The environment variable naming the mode.
    public static let environmentVariable = "SANDBOX_VCR_RECORD"

    /// Resolves the mode: `explicit`, then ``current``, then `SANDBOX_VCR_RECORD`, then `missing` (`never` on CI).
    ///
    /// An unknown value in `SANDBOX_VCR_RECORD` is ignored (the default applies).
    public static func resolve(
        _ explicit: RecordMode? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> RecordMode {
        if let explicit { return explicit }
        if let current { return current }
        if let value = environment[environmentVariable], let mode = RecordMode(value) { return mode }
        if let ci = environment["CI"], !ci.isEmpty, ci.lowercased() != "false", ci != "0" { return .never }
        return .missing
    }
}

/// Runs `operation` with ``RecordMode/current`` set to `mode`.
public func withRecordMode<T>(
    _ mode: RecordMode, operation: () async throws -> T, isolation: isolated (any Actor)? = #isolation
) async rethrows -> T {
    try await RecordMode.$current.withValue(mode, operation: operation, isolation: isolation)
}
