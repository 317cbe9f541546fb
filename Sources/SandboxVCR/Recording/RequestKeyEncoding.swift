internal import Foundation

/// The canonical bytes a request key is the SHA-256 of: a versioned encoding of its own, so that a change of how
/// cassettes store requests (``RecordCoding``) never changes a key.
///
/// Version 1 (frozen: its bytes are the keys of every cassette recorded so far; a change needs a version 2 and a
/// re-key of old cassettes). Numbers as in ``ByteWriter`` (LEB128 lengths and counts, zigzag integers, big-endian
/// IEEE doubles); a *part* is `0, length, bytes` when under 256 bytes, else `1` and the SHA-256 of the bytes.
///
/// ```text
/// 0x01                                   version
/// 0x00 language part(code)               a source program, or
/// 0x01 count part(arg)… optional(workdir) a command
/// count (path part(bytes))…              files, by UTF-8 order of path
/// part(stdin) double(run_timeout) double(compile_timeout) optional(memory_limit_mb)
/// count path…                            files to fetch, by UTF-8 order
/// ```
enum RequestKeyEncoding {
    static let version: UInt8 = 1
    /// Parts at least this long are hashed instead of written out.
    static let hashedPartLength = 256

    /// The canonical bytes of an (already normalized) request.
    ///
    /// - Parameter digests: a cache of the SHA-256 of large parts (a harness sent with every request is hashed once).
    static func bytes(of request: ExecutionRequest, digests: PartDigestCache?) -> [UInt8] {
        var writer = ByteWriter(capacity: 128)
        func part(_ data: Data) {
            if data.count < hashedPartLength {
                writer.byte(0)
                writer.raw(data)
            } else {
                writer.byte(1)
                writer.digest(digests?.digest(of: data) ?? ContentHash.sha256(data))
            }
        }
        func part(_ text: String) {
            if text.utf8.count < hashedPartLength {
                writer.byte(0)
                writer.string(text)
            } else {
                // Hashed from the string's own UTF-8: the same bytes as `part(Data)`, without a copy.
                writer.byte(1)
                writer.digest(digests?.digest(of: text) ?? text.utf8Digest)
            }
        }
        writer.byte(version)
        switch request.program {
        case .source(let language, let code):
            writer.byte(0)
            writer.string(language.rawValue)
            part(code)
        case .command(let argv, let workdir):
            writer.byte(1)
            writer.unsigned(UInt64(argv.count))
            for argument in argv { part(argument) }
            writer.optionalString(workdir)
        }
        writer.unsigned(UInt64(request.files.count))
        for (path, data) in request.files.sorted(by: { RecordCoding.utf8Order($0.key, $1.key) }) {
            writer.string(path)
            part(data)
        }
        part(request.stdin)
        // Version 1 keys hash the seconds as a Double: the same bytes as before timeouts were `Duration`s.
        writer.double(request.runTimeout.inSeconds)
        writer.double(request.compileTimeout.inSeconds)
        writer.optionalInt(request.memoryLimitMB)
        writer.unsigned(UInt64(request.fetchFiles.count))
        for path in request.fetchFiles.sorted(by: RecordCoding.utf8Order) { writer.string(path) }
        return writer.bytes
    }
}

extension String {
    /// The SHA-256 of the string's UTF-8, read in place.
    fileprivate var utf8Digest: ContentHash {
        var text = self
        return text.withUTF8 { ContentHash.sha256(raw: UnsafeRawBufferPointer($0)) }
    }
}
