internal import CCrypto
public import Foundation

/// A SHA-256 digest: the key of a recorded request, and the content address of a stored part.
///
/// 32 bytes stored inline (no heap allocation; hashing and comparing are a few word operations). Computed with
/// OpenSSL's libcrypto, which libcurl links already.
///
/// ```swift
/// let key = ContentHash.sha256(Data("abc".utf8))   // ba7816bf...
/// ```
public struct ContentHash: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The digest as four big-endian 64-bit words.
    private let words: (UInt64, UInt64, UInt64, UInt64)

    /// The 32 bytes of the digest.
    public var bytes: [UInt8] {
        [UInt8](unsafeUninitializedCapacity: 32) { buffer, count in
            withUnsafeBytes {
                buffer.baseAddress!.initialize(from: $0.bindMemory(to: UInt8.self).baseAddress!, count: 32)
            }
            count = 32
        }
    }

    /// Calls `body` with the 32 bytes, without copying them to the heap.
    public func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        var bigEndian = (words.0.bigEndian, words.1.bigEndian, words.2.bigEndian, words.3.bigEndian)
        return try Swift.withUnsafeBytes(of: &bigEndian) { try body($0) }
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        self.init(unchecked: bytes)
    }

    /// From bytes read back from a cassette; a wrong length (a damaged file) is padded or cut to 32 bytes.
    init(unchecked bytes: [UInt8]) {
        func word(_ index: Int) -> UInt64 {
            var value: UInt64 = 0
            for offset in 0..<8 {
                let position = index * 8 + offset
                value = value << 8 | UInt64(position < bytes.count ? bytes[position] : 0)
            }
            return value
        }
        words = (word(0), word(1), word(2), word(3))
    }

    init(words: (UInt64, UInt64, UInt64, UInt64)) { self.words = words }

    /// Parses 64 hexadecimal digits.
    public init?(hex: String) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 32)
        for index in 0..<32 {
            guard let high = Self.nibble(utf8[2 * index]), let low = Self.nibble(utf8[2 * index + 1]) else {
                return nil
            }
            bytes[index] = high << 4 | low
        }
        self.init(unchecked: bytes)
    }

    private static func nibble(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Lower-case hexadecimal.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        withUnsafeBytes { bytes in
            for byte in bytes {
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    public var description: String { hex }

    /// Byte-wise order (big-endian words compare like their bytes).
    public static func < (lhs: ContentHash, rhs: ContentHash) -> Bool {
        if lhs.words.0 != rhs.words.0 { return lhs.words.0 < rhs.words.0 }
        if lhs.words.1 != rhs.words.1 { return lhs.words.1 < rhs.words.1 }
        if lhs.words.2 != rhs.words.2 { return lhs.words.2 < rhs.words.2 }
        return lhs.words.3 < rhs.words.3
    }

    public static func == (lhs: ContentHash, rhs: ContentHash) -> Bool {
        lhs.words.0 == rhs.words.0 && lhs.words.1 == rhs.words.1 && lhs.words.2 == rhs.words.2
            && lhs.words.3 == rhs.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(words.0)
        hasher.combine(words.1)
        hasher.combine(words.2)
        hasher.combine(words.3)
    }
}

extension ContentHash {
    /// The SHA-256 of `data`.
    public static func sha256(_ data: Data) -> ContentHash {
        data.withUnsafeBytes { sha256(raw: $0) }
    }

    /// The SHA-256 of `bytes`.
    public static func sha256(_ bytes: [UInt8]) -> ContentHash {
        bytes.withUnsafeBytes { sha256(raw: $0) }
    }

    /// The SHA-256 of the bytes in `buffer`.
    static func sha256(raw buffer: UnsafeRawBufferPointer) -> ContentHash {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { output in
            let isDone =
                csvcr_sha256(
                    buffer.baseAddress ?? UnsafeRawPointer(bitPattern: 1), buffer.count,
                    output.baseAddress?.assumingMemoryBound(to: UInt8.self)) == 1
            // EVP_Digest fails only when OpenSSL cannot allocate its context: nothing can go on without hashing.
            precondition(isDone, "OpenSSL's SHA-256 failed (out of memory)")
            func word(_ index: Int) -> UInt64 {
                UInt64(
                    bigEndian: UnsafeRawBufferPointer(output).loadUnaligned(fromByteOffset: index * 8, as: UInt64.self))
            }
            return ContentHash(words: (word(0), word(1), word(2), word(3)))
        }
    }
}
