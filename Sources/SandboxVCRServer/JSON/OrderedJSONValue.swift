/// A JSON value as Python's `json` module sees it: objects keep their key order (a repeated key keeps its first
/// place and its last value), integers keep their exact digits, and `NaN` / `Infinity` are numbers.
///
/// The server echoes client input back in validation errors the way FastAPI does, so it needs the value exactly
/// as Python parsed it, not as `JSONSerialization` would.
public enum OrderedJSONValue: Hashable, Sendable {
    case null
    case bool(Bool)
    /// An integer; the digits are kept as text so values beyond 64 bits echo back unchanged.
    case integer(String)
    case float(Double)
    case string(String)
    case array([OrderedJSONValue])
    case object([(String, OrderedJSONValue)])

    public static func == (lhs: OrderedJSONValue, rhs: OrderedJSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.integer(let a), .integer(let b)): a == b
        case (.float(let a), .float(let b)): a == b || (a.isNaN && b.isNaN)
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)):
            a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let value): hasher.combine(value)
        case .integer(let value): hasher.combine(value)
        case .float(let value): hasher.combine(value.isNaN ? Double.nan.bitPattern : value.bitPattern)
        case .string(let value): hasher.combine(value)
        case .array(let values): hasher.combine(values)
        case .object(let members):
            hasher.combine(members.count)
            for (key, value) in members {
                hasher.combine(key)
                hasher.combine(value)
            }
        }
    }

    /// The value of `key` in an object, or `nil`.
    public subscript(key: String) -> OrderedJSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    /// The string, when this is one.
    public var stringValue: String? {
        if case .string(let value) = self { value } else { nil }
    }

    /// Makes an object from members, keeping their order.
    public static func makeObject(_ members: KeyValuePairs<String, OrderedJSONValue>) -> OrderedJSONValue {
        .object(members.map { ($0.key, $0.value) })
    }
}

extension OrderedJSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral,
    ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .integer(String(value)) }
    public init(arrayLiteral elements: OrderedJSONValue...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .float(value) }
}
