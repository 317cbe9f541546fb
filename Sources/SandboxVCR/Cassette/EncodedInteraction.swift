internal import Foundation

/// An interaction encoded for the `interactions` row, off the writer: its records, the parts they reference, and
/// the columns that index it.
struct EncodedInteraction: Sendable {
    var key: Data
    var ordinal: Int
    var session: String?
    var step: Int?
    var backend: String
    var backendVersion: String?
    var request: Data
    var outcome: Data
    /// ``RecordChecksum`` of each record.
    var requestChecksum: Int64
    var outcomeChecksum: Int64
    /// The parts the records reference, by hash.
    var blobs: [ContentHash: Data]
    var recordedAt: Double
    var duration: Double?
    var lastReplayedAt: Double?
    /// ``programKind(_:)`` of the request.
    var program: String
    /// ``codeHash(_:)`` of the request's code, if it has code.
    var codeHash: Int64?

    init(_ interaction: Cassette.NewInteraction, cache: PartDigestCache? = nil) {
        var sink = BlobSink(cache: cache)
        request = Data(RecordCoding.encode(interaction.request, sink: &sink))
        outcome = Data(RecordCoding.encode(interaction.outcome, sink: &sink))
        requestChecksum = RecordChecksum.of(request)
        outcomeChecksum = RecordChecksum.of(outcome)
        blobs = sink.blobs
        key = interaction.key.data
        ordinal = interaction.ordinal
        session = interaction.session
        step = interaction.step
        backend = interaction.backend
        backendVersion = interaction.backendVersion
        recordedAt = interaction.recordedAt.timeIntervalSince1970
        duration = interaction.duration
        lastReplayedAt = interaction.lastReplayedAt?.timeIntervalSince1970
        program = Self.programKind(interaction.request)
        codeHash = interaction.request.code.map(Self.codeHash)
    }

    /// The `code_hash` column: FNV-1a (64 bits) of the code's UTF-8, to put recordings of the same code first in
    /// miss diagnostics. Not a content address: equal hashes are only a hint.
    static func codeHash(_ code: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in code.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return Int64(bitPattern: hash)
    }

    /// The `program` column: `python`, `cpp`, ... for source requests; `command:<argv0>` for commands.
    static func programKind(_ request: ExecutionRequest) -> String {
        switch request.program {
        case .source(let language, _): language.rawValue
        case .command(let argv, _): "command:" + (argv.first ?? "")
        }
    }
}
