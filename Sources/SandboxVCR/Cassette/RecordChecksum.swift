internal import CZlib
internal import Foundation

/// CRC-32 (zlib's) of stored bytes: every record and blob carries one, checked on each read, so a changed byte is a
/// `corrupted` error rather than a wrong answer replayed as right. Not a defence against deliberate edits: that is
/// what version control is for.
enum RecordChecksum {
    /// The checksum of `bytes`, as SQLite stores it.
    static func of(_ bytes: some ContiguousBytes) -> Int64 {
        bytes.withUnsafeBytes { buffer in
            var crc = crc32(0, nil, 0)
            var offset = 0
            // zlib takes a 32-bit length.
            while offset < buffer.count {
                let length = min(buffer.count - offset, 1 << 30)
                crc = crc32(crc, buffer.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset, UInt32(length))
                offset += length
            }
            return Int64(crc)
        }
    }
}
