internal import Foundation

/// A stable byte encoding: big-endian fixed-width numbers, LEB128 lengths, length-prefixed strings.
///
/// Used for request keys and for the stored request and outcome records. Unlike `JSONEncoder` output its
/// bytes never depend on dictionary order or on how a toolchain formats numbers.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    mutating func byte(_ value: UInt8) { bytes.append(value) }

    mutating func unsigned(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    mutating func int(_ value: Int) {
        let wide = Int64(value)
        unsigned(UInt64(bitPattern: (wide << 1) ^ (wide >> 63)))
    }

    mutating func double(_ value: Double) {
        let pattern = value.bitPattern
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: pattern >> UInt64(shift)))
        }
    }

    mutating func optionalInt(_ value: Int?) {
        if let value {
            byte(1)
            int(value)
        } else {
            byte(0)
        }
    }

    mutating func optionalDouble(_ value: Double?) {
        if let value {
            byte(1)
            double(value)
        } else {
            byte(0)
        }
    }

    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            unsigned(UInt64(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func optionalString(_ value: String?) {
        if let value {
            byte(1)
            string(value)
        } else {
            byte(0)
        }
    }

    mutating func raw(_ data: Data) {
        unsigned(UInt64(data.count))
        bytes.append(contentsOf: data)
    }

    mutating func digest(_ digest: ContentHash) { digest.withUnsafeBytes { bytes.append(contentsOf: $0) } }
}

/// Reads what ``ByteWriter`` wrote; any inconsistency is a `CodingFailure`.
struct ByteReader {
    struct CodingFailure: Error {}

    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset >= bytes.count }

    mutating func byte() throws(CodingFailure) -> UInt8 {
        guard offset < bytes.count else { throw CodingFailure() }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func unsigned() throws(CodingFailure) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let next = try byte()
            guard shift < 64 else { throw CodingFailure() }
            result |= UInt64(next & 0x7f) << shift
            if next & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func int() throws(CodingFailure) -> Int {
        let raw = try unsigned()
        let value = Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
        return Int(value)
    }

    mutating func double() throws(CodingFailure) -> Double {
        guard offset + 8 <= bytes.count else { throw CodingFailure() }
        var pattern: UInt64 = 0
        for index in 0..<8 { pattern = pattern << 8 | UInt64(bytes[offset + index]) }
        offset += 8
        return Double(bitPattern: pattern)
    }

    mutating func optionalInt() throws(CodingFailure) -> Int? { try byte() == 0 ? nil : try int() }
    mutating func optionalDouble() throws(CodingFailure) -> Double? { try byte() == 0 ? nil : try double() }

    mutating func count() throws(CodingFailure) -> Int {
        let value = try unsigned()
        guard value <= UInt64(bytes.count - offset) || value <= 1 << 24 else { throw CodingFailure() }
        return Int(value)
    }

    mutating func rawBytes(_ count: Int) throws(CodingFailure) -> ArraySlice<UInt8> {
        guard count >= 0, offset + count <= bytes.count else { throw CodingFailure() }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    mutating func string() throws(CodingFailure) -> String {
        let length = try count()
        return String(decoding: try rawBytes(length), as: UTF8.self)
    }

    mutating func optionalString() throws(CodingFailure) -> String? { try byte() == 0 ? nil : try string() }

    mutating func raw() throws(CodingFailure) -> Data { Data(try rawBytes(try count())) }

    mutating func digest() throws(CodingFailure) -> ContentHash {
        ContentHash(unchecked: Array(try rawBytes(32)))
    }
}
