import NIOCore
import NIOEmbedded
import Testing

@testable import SandboxVCRModalServer

/// The Modal port's filter of a client's resets of finished streams (libcurl 7.88 sends one per stream), on an
/// embedded channel fed raw HTTP/2 bytes in pieces of every size.
@Suite struct RedundantResetFilterTests {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32, payload: [UInt8] = []) -> [UInt8] {
        let length = UInt32(payload.count)
        return [
            UInt8(length >> 16), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags,
            UInt8(stream >> 24), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff),
        ] + payload
    }

    static func reset(_ stream: UInt32) -> [UInt8] { frame(type: 0x3, stream: stream, payload: [0, 0, 0, 5]) }
    static func request(_ stream: UInt32, endsStream: Bool = true) -> [UInt8] {
        frame(type: 0x1, flags: 0x4, stream: stream, payload: [0x83, 0x86])
            + frame(type: 0x0, flags: endsStream ? 0x1 : 0, stream: stream, payload: Array(repeating: 7, count: 20))
    }
    static func answer(_ stream: UInt32) -> [UInt8] {
        frame(type: 0x1, flags: 0x4, stream: stream, payload: [0x88])
            + frame(type: 0x0, stream: stream, payload: Array(repeating: 9, count: 30))
            + frame(type: 0x1, flags: 0x5, stream: stream, payload: [0x40])
    }

    /// Feeds `steps` (client bytes in, server bytes out, in this order) in pieces of `piece` bytes; returns the client
    /// bytes that reached the pipeline beyond the filter, and the resets it counted.
    static func run(_ steps: [(client: Bool, bytes: [UInt8])], piece: Int) throws -> (passed: [UInt8], ignored: Int) {
        let statistics = ModalServeStatistics()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(RedundantResetFilter(statistics: statistics))
        var passed: [UInt8] = []
        for step in steps {
            var offset = 0
            while offset < step.bytes.count {
                let slice = Array(step.bytes[offset..<min(offset + piece, step.bytes.count)])
                offset += slice.count
                if step.client {
                    try channel.writeInbound(ByteBuffer(bytes: slice))
                    while let read = try channel.readInbound(as: ByteBuffer.self) {
                        passed += read.readableBytesView
                    }
                } else {
                    try channel.writeOutbound(IOData.byteBuffer(ByteBuffer(bytes: slice)))
                    while try channel.readOutbound(as: IOData.self) != nil {}
                }
            }
        }
        _ = try channel.finish()
        return (passed, statistics.snapshot["ignoredResets"] ?? 0)
    }

    @Test("a reset of a stream both ends closed is dropped, whatever the read sizes; every other byte passes")
    func resetsOfFinishedStreamsAreDropped() throws {
        let steps: [(client: Bool, bytes: [UInt8])] = [
            (true, Self.preface + Self.frame(type: 0x4, stream: 0) + Self.request(1) + Self.request(3)),
            (false, Self.answer(1)),
            (true, Self.reset(1) + Self.request(5)),
            (false, Self.answer(3) + Self.answer(5)),
            (
                true,
                Self.reset(3) + Self.reset(5) + Self.frame(type: 0x6, stream: 0, payload: Array(repeating: 1, count: 8))
            ),
        ]
        let expected =
            Self.preface + Self.frame(type: 0x4, stream: 0) + Self.request(1) + Self.request(3) + Self.request(5)
            + Self.frame(type: 0x6, stream: 0, payload: Array(repeating: 1, count: 8))
        for piece in [1, 2, 5, 9, 13, 64, 4096] {
            let result = try Self.run(steps, piece: piece)
            let same = result.passed == expected
            #expect(same, "piece \(piece): \(result.passed.count) bytes passed, \(expected.count) expected")
            #expect(result.ignored == 3, "piece \(piece)")
        }
    }

    @Test("a reset of a stream still open at either end passes (a client cancelling a call)")
    func resetsOfOpenStreamsPass() throws {
        let steps: [(client: Bool, bytes: [UInt8])] = [
            // Stream 1: the client has ended its side, the server has not answered: a cancel.
            (true, Self.preface + Self.request(1) + Self.reset(1)),
            // Stream 3: the server answered, the client never ended its side.
            (true, Self.request(3, endsStream: false)),
            (false, Self.answer(3)),
            (true, Self.reset(3)),
            // Stream 5: reset twice; the second, after the stream closed by the first, is redundant.
            (true, Self.request(5)),
            (true, Self.reset(5) + Self.reset(5)),
        ]
        for piece in [1, 7, 4096] {
            let result = try Self.run(steps, piece: piece)
            let expected =
                Self.preface + Self.request(1) + Self.reset(1) + Self.request(3, endsStream: false) + Self.reset(3)
                + Self.request(5) + Self.reset(5)
            let same = result.passed == expected
            #expect(same, "piece \(piece): \(result.passed.count) bytes passed, \(expected.count) expected")
            #expect(result.ignored == 1, "piece \(piece)")
        }
    }

    @Test("random frame streams cut at random points: the output is the input without the dropped resets")
    func randomStreamsAndCuts() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var steps: [(client: Bool, bytes: [UInt8])] = [(true, Self.preface)]
            var expected = Self.preface
            var dropped = 0
            for index in 0..<Int.random(in: 1...12, using: &generator) {
                let stream = UInt32(2 * index + 1)
                let endsStream = Bool.random(using: &generator)
                let request = Self.request(stream, endsStream: endsStream)
                steps.append((true, request))
                expected += request
                let answered = Bool.random(using: &generator)
                if answered { steps.append((false, Self.answer(stream))) }
                if Bool.random(using: &generator) {
                    steps.append((true, Self.reset(stream)))
                    // Closed at both ends only if the request ended its side and the server answered in full.
                    if answered && endsStream {
                        dropped += 1
                    } else {
                        expected += Self.reset(stream)
                    }
                }
            }
            let result = try Self.run(steps, piece: Int.random(in: 1...40, using: &generator))
            let same = result.passed == expected
            #expect(same, "\(result.passed.count) bytes passed, \(expected.count) expected")
            #expect(result.ignored == dropped)
        }
    }
}
