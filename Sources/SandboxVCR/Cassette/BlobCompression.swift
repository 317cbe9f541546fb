internal import CZlib
internal import Foundation

/// How a blob's bytes are stored: raw, or zlib-compressed when that saves at least a tenth.
///
/// The blob's hash and size always describe the uncompressed bytes. Uses zlib's `compress2` and `uncompress`
/// (https://zlib.net/manual.html).
enum BlobCompression {
    static let raw: Int64 = 0
    static let zlib: Int64 = 1
    /// Blobs smaller than this are stored raw.
    static let minimumSize = 128

    /// The stored form of `data` and its compression code.
    static func pack(_ data: Data) -> (bytes: Data, compression: Int64) {
        guard data.count >= minimumSize else { return (data, raw) }
        var capacity = compressBound(uLong(data.count))
        var output = Data(count: Int(capacity))
        let status = output.withUnsafeMutableBytes { out in
            data.withUnsafeBytes { input in
                compress2(
                    out.bindMemory(to: Bytef.self).baseAddress, &capacity,
                    input.bindMemory(to: Bytef.self).baseAddress, uLong(data.count), 6)
            }
        }
        guard status == Z_OK, Int(capacity) < data.count * 9 / 10 else { return (data, raw) }
        output.count = Int(capacity)
        return (output, zlib)
    }

    /// The original bytes, or `nil` when the stored bytes are damaged.
    static func unpack(_ stored: Data, compression: Int64, size: Int) -> Data? {
        switch compression {
        case raw:
            return stored
        case zlib:
            var length = uLong(size)
            var output = Data(count: size)
            let status = output.withUnsafeMutableBytes { out in
                stored.withUnsafeBytes { input in
                    uncompress(
                        out.bindMemory(to: Bytef.self).baseAddress, &length,
                        input.bindMemory(to: Bytef.self).baseAddress, uLong(stored.count))
                }
            }
            guard status == Z_OK, Int(length) == size else { return nil }
            return output
        default:
            return nil
        }
    }
}
