public import Foundation

/// When a ``RecordingExecutor`` calls the live executor and records, named like swift-snapshot-testing's modes.
///
/// A closed set: `never`, `missing`, `all`, `live`; ``init(rawValue:)`` fails on anything else. Resolved, in order,
/// from: an explicit argument, the task-local ``current`` (set by the `.cassette` test trait or
/// ``withRecordMode(_:operation:isolation:)``), the `SANDBOX_VCR_RECORD` environment variable, then the default
/// `missing` (or `never` when the `CI` environment variable is set).
public struct RecordMode: RawRepresentable, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    private enum Mode: String, CaseIterable {
        case never, missing, all, live
    }

    private let mode: Mode

    private init(_ mode: Mode) { self.mode = mode }

    /// The mode named `rawValue` exactly (`never`, `missing`, `all` or `live`); `nil` for anything else.
    public init?(rawValue: String) {
        guard let mode = Mode(rawValue: rawValue) else { return nil }
        self.mode = mode
    }

    /// Parses a mode name in any case.
    public init?(_ text: String) { self.init(rawValue: text.lowercased()) }

    public var rawValue: String { mode.rawValue }
    public var description: String { rawValue }

    /// Replay only; a request with no recording is an error. No live executor is needed.
    public static let never = RecordMode(.never)
    /// Replay what is recorded; call the live executor for the rest and record it.
    public static let missing = RecordMode(.missing)
    /// Call the live executor for everything and replace what was recorded.
    public static let all = RecordMode(.all)
    /// Pass every request through to the live executor; record and replay nothing.
    public static let live = RecordMode(.live)

    /// Every mode, in order of strictness.
    public static let allCases: [RecordMode] = Mode.allCases.map(RecordMode.init)
    /// Every mode, in order of strictness (``allCases``).
    public static var allModes: [RecordMode] { allCases }

    /// The mode set by the innermost `.cassette` trait or ``withRecordMode(_:operation:isolation:)``.
    @TaskLocal public static var current: RecordMode?

    /// The environment variable naming the mode.
    public static let environmentVariable = "SANDBOX_VCR_RECORD"

    /// Resolves the mode: `explicit`, then ``current``, then `SANDBOX_VCR_RECORD`, then `missing` (`never` on CI).
    ///
    /// - Throws: ``ExecutionError`` `configuration` when `SANDBOX_VCR_RECORD` names no mode (an unknown value is an
    ///   error, never silently a default).
    public static func resolve(
        _ explicit: RecordMode? = nil,
        environment: @autoclosure () -> [String: String] = ProcessInfo.processInfo.environment
    ) throws -> RecordMode {
        if let explicit { return explicit }
        if let current { return current }
        let environment = environment()
        if let value = environment[environmentVariable], !value.isEmpty {
            guard let mode = RecordMode(value) else {
                throw ExecutionError(
                    code: .configuration,
                    message: "\(environmentVariable)=\"\(value)\" is not a record mode; use never, missing, all or "
                        + "live (or unset it)")
            }
            return mode
        }
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
