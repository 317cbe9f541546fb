package import Foundation
internal import Synchronization

/// Remembers the SHA-256 of large byte strings seen recently (a harness file sent with every request is
/// hashed once, not once per request). Lookups read the caller's bytes in place (a request's code is never
/// copied to find its digest) and compare them whole, so a hit is always exact.
package final class PartDigestCache: Sendable {
    /// Parts at least this large are cached.
    static let minimumSize = 2048

    /// A cheap stand-in for the bytes: their length and their first and last 64 bytes.
    private struct Fingerprint: Hashable {
        var count: Int
        var edges: Int

        init(_ bytes: UnsafeRawBufferPointer) {
            var hasher = Hasher()
            hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: bytes.prefix(64)))
            hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: bytes.suffix(64)))
            count = bytes.count
            edges = hasher.finalize()
        }
    }

    private struct State {
        var entries: [Fingerprint: [(bytes: Data, digest: ContentHash)]] = [:]
        var count = 0
        var bytes = 0
    }

    private let state = Mutex(State())
    private let capacity: Int
    private let byteCapacity: Int

    init(capacity: Int = 128, byteCapacity: Int = 32 << 20) {
        self.capacity = capacity
        self.byteCapacity = byteCapacity
    }

    func digest(of data: Data) -> ContentHash {
        data.withUnsafeBytes { digest(of: $0) }
    }

    func digest(of text: String) -> ContentHash {
        var text = text
        return text.withUTF8 { digest(of: UnsafeRawBufferPointer($0)) }
    }

    func digest(of bytes: UnsafeRawBufferPointer) -> ContentHash {
        guard bytes.count >= Self.minimumSize else { return ContentHash.sha256(raw: bytes) }
        let fingerprint = Fingerprint(bytes)
        let hit = state.withLock { state in
            state.entries[fingerprint]?.first { entry in
                entry.bytes.withUnsafeBytes { stored in
                    memcmp(stored.baseAddress!, bytes.baseAddress!, bytes.count) == 0
                }
            }?.digest
        }
        if let hit { return hit }
        let digest = ContentHash.sha256(raw: bytes)
        guard bytes.count <= byteCapacity / 4 else { return digest }
        let copy = Data(bytes)
        state.withLock { state in
            if state.count >= capacity || state.bytes + bytes.count > byteCapacity {
                state.entries.removeAll(keepingCapacity: true)
                state.count = 0
                state.bytes = 0
            }
            state.entries[fingerprint, default: []].append((copy, digest))
            state.count += 1
            state.bytes += bytes.count
        }
        return digest
    }
}

/// Collects the large parts of a record as content-addressed blobs while it is encoded.
package struct BlobSink {
    /// Parts shorter than this stay inline in the record.
    static let inlineLimit = 256
    package var blobs: [ContentHash: Data] = [:]
    let cache: PartDigestCache?

    package init(cache: PartDigestCache? = nil) { self.cache = cache }

    mutating func digest(_ data: Data) -> ContentHash {
        let digest = cache?.digest(of: data) ?? ContentHash.sha256(data)
        blobs[digest] = data
        return digest
    }
}

extension ByteWriter {
    /// A byte string: inline when short, else a blob reference by SHA-256.
    mutating func part(_ data: Data, sink: inout BlobSink) {
        if data.count < BlobSink.inlineLimit {
            byte(0)
            raw(data)
        } else {
            byte(1)
            digest(sink.digest(data))
        }
    }

    mutating func part(_ text: String, sink: inout BlobSink) {
        // Short text is written straight from its UTF-8 (the same bytes `part(Data)` writes, without a copy).
        if text.utf8.count < BlobSink.inlineLimit {
            byte(0)
            string(text)
        } else {
            part(Data(text.utf8), sink: &sink)
        }
    }
}

extension ByteReader {
    mutating func part(_ load: (ContentHash) throws -> Data) throws -> Data {
        switch try byte() {
        case 0: return try raw()
        case 1: return try load(try digest())
        default: throw CodingFailure()
        }
    }

    mutating func partText(_ load: (ContentHash) throws -> Data) throws -> String {
        String(decoding: try part(load), as: UTF8.self)
    }
}

/// The canonical byte form of requests and outcomes, with large parts stored as blobs.
package enum RecordCoding {
    static let requestVersion: UInt8 = 1
    static let outcomeVersion: UInt8 = 1

    // MARK: Requests

    package static func encode(_ request: ExecutionRequest, sink: inout BlobSink) -> [UInt8] {
        var writer = ByteWriter(capacity: 128)
        writer.byte(requestVersion)
        switch request.program {
        case .source(let language, let code):
            writer.byte(0)
            writer.string(language.rawValue)
            writer.part(code, sink: &sink)
        case .command(let argv, let workdir):
            writer.byte(1)
            writer.unsigned(UInt64(argv.count))
            for argument in argv { writer.part(argument, sink: &sink) }
            writer.optionalString(workdir)
        }
        writer.unsigned(UInt64(request.files.count))
        for path in request.files.keys.sorted(by: utf8Order) {
            writer.string(path)
            writer.part(request.files[path]!, sink: &sink)
        }
        writer.part(request.stdin, sink: &sink)
        writer.double(request.runTimeout.inSeconds)
        writer.double(request.compileTimeout.inSeconds)
        writer.optionalInt(request.memoryLimitMB)
        writer.unsigned(UInt64(request.fetchFiles.count))
        for path in request.fetchFiles.sorted(by: utf8Order) { writer.string(path) }
        return writer.bytes
    }

    package static func decodeRequest(_ bytes: [UInt8], load: (ContentHash) throws -> Data) throws -> ExecutionRequest {
        var reader = ByteReader(bytes)
        guard try reader.byte() == requestVersion else { throw ByteReader.CodingFailure() }
        let program: ExecutionRequest.Program
        switch try reader.byte() {
        case 0:
            let language = Language(rawValue: try reader.string())
            program = .source(language: language, code: try reader.partText(load))
        case 1:
            var argv: [String] = []
            for _ in 0..<(try reader.count()) { argv.append(try reader.partText(load)) }
            program = .command(argv: argv, workdir: try reader.optionalString())
        default: throw ByteReader.CodingFailure()
        }
        var files: [String: Data] = [:]
        for _ in 0..<(try reader.count()) {
            let path = try reader.string()
            files[path] = try reader.part(load)
        }
        let stdin = try reader.part(load)
        let runTimeout = Duration(secondsClamped: try reader.double())
        let compileTimeout = Duration(secondsClamped: try reader.double())
        let memory = try reader.optionalInt()
        var fetch: Set<String> = []
        for _ in 0..<(try reader.count()) { fetch.insert(try reader.string()) }
        guard reader.isAtEnd else { throw ByteReader.CodingFailure() }
        return ExecutionRequest(
            program: program, files: files, stdin: stdin, runTimeout: runTimeout, compileTimeout: compileTimeout,
            memoryLimitMB: memory, fetchFiles: fetch)
    }

    // MARK: Outcomes

    package static func encode(_ outcome: Cassette.Outcome, sink: inout BlobSink) -> [UInt8] {
        var writer = ByteWriter(capacity: 128)
        writer.byte(outcomeVersion)
        switch outcome {
        case .result(let result):
            writer.byte(0)
            writer.string(result.status.rawValue)
            for step in [result.compile, result.run] {
                guard let step else {
                    writer.byte(0)
                    continue
                }
                writer.byte(1)
                writer.string(step.status.rawValue)
                writer.optionalInt(step.exitCode)
                writer.optionalInt(step.signal)
                writer.part(step.stdout, sink: &sink)
                writer.part(step.stderr, sink: &sink)
                writer.optionalDouble(step.wallTime)
                writer.optionalDouble(step.cpuTime)
            }
            writer.unsigned(UInt64(result.files.count))
            for path in result.files.keys.sorted(by: utf8Order) {
                writer.string(path)
                writer.part(result.files[path]!, sink: &sink)
            }
            writer.part(result.message, sink: &sink)
            writer.string(result.backend.rawValue)
            writer.optionalString(result.executorName)
            let hints = result.hints.map(encode(hint:)).sorted { $0.lexicographicallyPrecedes($1) }
            writer.unsigned(UInt64(hints.count))
            for hint in hints { writer.bytes.append(contentsOf: hint) }
        case .failure(let error):
            writer.byte(1)
            writer.string(error.code.rawValue)
            writer.part(error.message, sink: &sink)
            writer.optionalInt(error.httpStatus)
            writer.unsigned(UInt64(error.validationIssues.count))
            for issue in error.validationIssues {
                writer.string(issue.type)
                writer.unsigned(UInt64(issue.location.count))
                for part in issue.location { writer.string(part) }
                writer.string(issue.message)
            }
            writer.optionalString(error.url)
            writer.int(error.attempts)
        }
        return writer.bytes
    }

    package static func decodeOutcome(_ bytes: [UInt8], load: (ContentHash) throws -> Data) throws -> Cassette.Outcome {
        var reader = ByteReader(bytes)
        guard try reader.byte() == outcomeVersion else { throw ByteReader.CodingFailure() }
        switch try reader.byte() {
        case 0:
            let status = ExecutionStatus(rawValue: try reader.string())
            var steps: [CommandOutcome?] = []
            for _ in 0..<2 {
                guard try reader.byte() == 1 else {
                    steps.append(nil)
                    continue
                }
                let stepStatus = CommandStatus(rawValue: try reader.string())
                let exitCode = try reader.optionalInt()
                let signal = try reader.optionalInt()
                let stdout = try reader.part(load)
                let stderr = try reader.part(load)
                let wall = try reader.optionalDouble()
                let cpu = try reader.optionalDouble()
                steps.append(
                    CommandOutcome(
                        status: stepStatus, exitCode: exitCode, signal: signal, stdout: stdout, stderr: stderr,
                        wallTime: wall, cpuTime: cpu))
            }
            var files: [String: Data] = [:]
            for _ in 0..<(try reader.count()) {
                let path = try reader.string()
                files[path] = try reader.part(load)
            }
            let message = try reader.partText(load)
            let backend = Backend(rawValue: try reader.string())
            let executorName = try reader.optionalString()
            var hints: Set<ResultHint> = []
            for _ in 0..<(try reader.count()) { hints.insert(try decodeHint(&reader)) }
            guard reader.isAtEnd else { throw ByteReader.CodingFailure() }
            return .result(
                ExecutionResult(
                    status: status, compile: steps[0], run: steps[1], files: files, message: message,
                    backend: backend, executorName: executorName, hints: hints))
        case 1:
            let code = ExecutionError.Code(rawValue: try reader.string())
            let message = try reader.partText(load)
            let httpStatus = try reader.optionalInt()
            var issues: [ExecutionError.ValidationIssue] = []
            for _ in 0..<(try reader.count()) {
                let type = try reader.string()
                var location: [String] = []
                for _ in 0..<(try reader.count()) { location.append(try reader.string()) }
                issues.append(.init(type: type, location: location, message: try reader.string()))
            }
            let url = try reader.optionalString()
            let attempts = try reader.int()
            guard reader.isAtEnd else { throw ByteReader.CodingFailure() }
            return .failure(
                ExecutionError(
                    code: code, message: message, httpStatus: httpStatus, validationIssues: issues, url: url,
                    attempts: attempts))
        default:
            throw ByteReader.CodingFailure()
        }
    }

    private static func encode(hint: ResultHint) -> [UInt8] {
        var writer = ByteWriter(capacity: 8)
        switch hint {
        case .outputPossiblyTruncated(let step, let stream, let limit):
            writer.byte(0)
            writer.string(step.rawValue)
            writer.string(stream.rawValue)
            writer.int(limit)
        case .outputReplacedByDecodeError(let step, let stream):
            writer.byte(1)
            writer.string(step.rawValue)
            writer.string(stream.rawValue)
        case .killedBySignal(let step, let signal):
            writer.byte(2)
            writer.string(step.rawValue)
            writer.int(signal)
        case .redacted(let field):
            writer.byte(3)
            writer.string(field)
        }
        return writer.bytes
    }

    private static func decodeHint(_ reader: inout ByteReader) throws -> ResultHint {
        func step() throws -> ResultHint.Step {
            guard let step = ResultHint.Step(rawValue: try reader.string()) else { throw ByteReader.CodingFailure() }
            return step
        }
        func stream() throws -> ResultHint.Stream {
            guard let value = ResultHint.Stream(rawValue: try reader.string()) else {
                throw ByteReader.CodingFailure()
            }
            return value
        }
        switch try reader.byte() {
        case 0: return .outputPossiblyTruncated(step: try step(), stream: try stream(), limit: try reader.int())
        case 1: return .outputReplacedByDecodeError(step: try step(), stream: try stream())
        case 2: return .killedBySignal(step: try step(), signal: try reader.int())
        case 3: return .redacted(field: try reader.string())
        default: throw ByteReader.CodingFailure()
        }
    }

    /// Orders strings by their UTF-8 bytes (stable across platforms, unlike locale-aware comparison).
    static func utf8Order(_ lhs: String, _ rhs: String) -> Bool { lhs.utf8.lexicographicallyPrecedes(rhs.utf8) }
}
