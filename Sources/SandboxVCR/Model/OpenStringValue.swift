/// A value from an open set of names, stored as its string: new names can be added later without breaking
/// anyone, and known ones are static members (`ExecutionStatus.success`), as swift-snapshot-testing and
/// async-http-client do instead of public enums.
///
/// Conforming types get `Codable` as a plain JSON string (the standard library's `RawRepresentable` coding) and
/// a `description` equal to the name.
public protocol OpenStringValue: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible
where RawValue == String {
    init(rawValue: String)
}

extension OpenStringValue {
    public var description: String { rawValue }
}
