import Foundation
import SandboxVCR

/// The cassette's stored records (``RecordCoding``): the input is decoded as a request record and as an outcome
/// record, whose blob references load made-up parts (some missing). A record that decodes, written back in the
/// canonical form, decodes to the same value and writes the same bytes again; a request's key is computed.
enum CassetteRecordsTarget: FuzzTarget {
    static let name = "cassette-records"

    private struct MissingBlob: Error {}

    /// A part for any hash: missing for hashes starting `f`, long and not UTF-8 for `e`, else the hash's hex.
    static func load(_ hash: ContentHash) throws -> Data {
        let hex = hash.hex
        if hex.hasPrefix("f") { throw MissingBlob() }
        if hex.hasPrefix("e") { return Data(hex.utf8) + Data(repeating: 0xFF, count: 300) }
        return Data(hex.utf8)
    }

    static func run(_ input: [UInt8]) throws(FuzzFailure) {
        if let request = try? RecordCoding.decodeRequest(input, load: load) {
            _ = RequestMatcher.exact.key(for: request)
            try checkRequest(request, input: input)
        }
        if let outcome = try? RecordCoding.decodeOutcome(input, load: load) {
            try checkOutcome(outcome, input: input)
        }
    }

    static func checkRequest(_ request: ExecutionRequest, input: [UInt8]) throws(FuzzFailure) {
        var sink = BlobSink()
        let first = RecordCoding.encode(request, sink: &sink)
        let blobs = sink.blobs
        let again: ExecutionRequest
        do {
            again = try RecordCoding.decodeRequest(first) { try blobs[$0] ?? load($0) }
        } catch {
            throw FuzzFailure(
                "a request record written back does not decode: \(preview(first)); input: \(preview(input))")
        }
        var secondSink = BlobSink()
        let second = RecordCoding.encode(again, sink: &secondSink)
        guard again == request, second == first else {
            throw FuzzFailure(
                "a request record written back reads differently: \(request) then \(again); "
                    + "records \(preview(first)) then \(preview(second)); input: \(preview(input))")
        }
    }

    /// Outcomes are compared by their records (a stored time may be NaN, which `==` never matches).
    static func checkOutcome(_ outcome: Cassette.Outcome, input: [UInt8]) throws(FuzzFailure) {
        var sink = BlobSink()
        let first = RecordCoding.encode(outcome, sink: &sink)
        let blobs = sink.blobs
        let again: Cassette.Outcome
        do {
            again = try RecordCoding.decodeOutcome(first) { try blobs[$0] ?? load($0) }
        } catch {
            throw FuzzFailure(
                "an outcome record written back does not decode: \(preview(first)); input: \(preview(input))")
        }
        var secondSink = BlobSink()
        let second = RecordCoding.encode(again, sink: &secondSink)
        guard second == first else {
            throw FuzzFailure(
                "an outcome record written back reads differently: \(outcome) then \(again); "
                    + "records \(preview(first)) then \(preview(second)); input: \(preview(input))")
        }
    }

    // MARK: Seeds

    static func seeds(fixtures: URL) throws -> [FuzzSeed] {
        var requests: [ExecutionRequest] = []
        var outcomes: [Cassette.Outcome] = []
        for (index, file) in ["grading-demo/cassette.sqlite", "cassettes/schema-v1-demo.sqlite"].enumerated() {
            for interaction in try FixtureCassette.interactions(fixtures.appendingPathComponent(file))
                .prefix(index == 0 ? 12 : 6)
            {
                requests.append(interaction.request)
                outcomes.append(interaction.outcome)
            }
        }
        // What the fixtures lack: a command, files and fetched files, a long (blob) part, hints, a failure.
        requests.append(
            ExecutionRequest(
                argv: ["python3", "-c", "print(1)"], workdir: "/tmp", files: ["a.txt": Data("hi".utf8)],
                stdin: String(repeating: "x", count: 300), runTimeout: .milliseconds(1500), memoryLimitMB: 512,
                fetchFiles: ["a.txt", "out/b.bin"]))
        outcomes.append(
            .result(
                ExecutionResult(
                    status: .failed,
                    compile: CommandOutcome(status: .finished, exitCode: 0, stdout: Data(), stderr: Data("w".utf8)),
                    run: CommandOutcome(
                        status: .finished, signal: 9, stdout: Data(repeating: 0xFF, count: 3), stderr: Data(),
                        wallTime: 0.25, cpuTime: 0.125),
                    files: ["out.txt": Data("ok".utf8)], message: "", backend: .modal, executorName: "sb-1",
                    hints: [
                        .killedBySignal(step: .run, signal: 9),
                        .outputReplacedByDecodeError(step: .run, stream: .stdout),
                        .outputPossiblyTruncated(step: .compile, stream: .stderr, limit: 219_264),
                    ])))
        outcomes.append(
            .failure(
                ExecutionError(
                    code: .httpStatus, message: "422", httpStatus: 422,
                    validationIssues: [.init(type: "missing", location: ["body", "code"], message: "Field required")],
                    url: "http://127.0.0.1:8080/run_code", attempts: 2)))
        var seeds: [FuzzSeed] = []
        for (index, request) in requests.enumerated() {
            var sink = BlobSink()
            seeds.append(FuzzSeed("request-\(index)", RecordCoding.encode(request, sink: &sink)))
        }
        for (index, outcome) in outcomes.enumerated() {
            var sink = BlobSink()
            seeds.append(FuzzSeed("outcome-\(index)", RecordCoding.encode(outcome, sink: &sink)))
        }
        return seeds
    }
}

/// The interactions of a committed cassette, read from a scratch copy (opening may migrate an old schema).
enum FixtureCassette {
    static func interactions(_ url: URL) throws -> [Cassette.Interaction] {
        let copy = FuzzScratch.folder.appendingPathComponent("fixture-\(UUID().uuidString).sqlite")
        try FileManager.default.copyItem(at: url, to: copy)
        defer {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: copy.path + suffix) }
        }
        return try Blocking.run {
            let cassette = try await Cassette.open(at: copy)
            var interactions: [Cassette.Interaction] = []
            try await cassette.forEachInteraction { interactions.append($0) }
            await cassette.close()
            return interactions
        }
    }
}
