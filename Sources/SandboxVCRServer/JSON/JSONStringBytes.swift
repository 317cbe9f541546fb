/// The bytes a JSON string cannot hold as they are (`"`, `\` and control characters), found eight at a time: the
/// parser stops at them, the answer writer escapes them.
enum JSONStringBytes {
    /// The high bit of each byte of `word` (read little-endian: its first byte lowest) that is `"`, `\` or below
    /// U+0020. Exact for the lowest such byte only (a borrow may flag bytes above it): take
    /// `trailingZeroBitCount / 8` as the offset of the first one.
    @inline(__always)
    static func special(in word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let quote = word ^ (ones &* UInt64(UInt8(ascii: "\"")))
        let backslash = word ^ (ones &* UInt64(UInt8(ascii: "\\")))
        let zeroQuote = (quote &- ones) & ~quote
        let zeroBackslash = (backslash &- ones) & ~backslash
        let control = (word &- ones &* 0x20) & ~word
        return (zeroQuote | zeroBackslash | control) & (ones &* 0x80)
    }
}
