import NIOCore

/// Drops a client's `RST_STREAM` for a stream already closed at both ends, before SwiftNIO's HTTP/2 handler sees it.
///
/// libcurl 7.88 (Debian 12's) sends `RST_STREAM` (`STREAM_CLOSED`) for every stream it has finished when the answer
/// carries no `content-length`, as no gRPC answer does: after the server ended the stream, so it cancels nothing.
/// SwiftNIO counts each such frame as a stream error and at the 200th on one connection (its glitch limit, not
/// configurable through grpc-swift's transport) ends the connection with `GOAWAY` `ENHANCE_YOUR_CALM`; the calls
/// still on it then fail. A reset of a stream both ends have closed changes nothing, so dropping it is safe; a
/// reset of a stream still open (a client cancelling a call) passes.
///
/// It sits first in the connection's pipeline (nearest the socket, cleartext HTTP/2 only): it reads the frame headers
/// of both directions to learn which streams ended (`END_STREAM` or `RST_STREAM` either way), and passes every byte
/// through unchanged except the dropped frames.
final class RedundantResetFilter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    /// How many closed streams it remembers (the reset of a closed stream follows its close within a round trip).
    static let closedStreamMemory = 4096

    private var streams = StreamEnds()
    /// The client's bytes: the connection preface, then frames.
    private var inbound = FrameScanner(prefaceLength: 24)
    /// The server's bytes: frames only.
    private var outbound = FrameScanner(prefaceLength: 0)
    /// Bytes at the start of the next read that belong to a frame being dropped.
    private var dropNext = 0
    /// The start of a frame header the last read did not complete, not passed on yet.
    private var withheld: [UInt8] = []
    private let statistics: ModalServeStatistics

    init(statistics: ModalServeStatistics) {
        self.statistics = statistics
    }

    /// Puts a filter first in an accepted connection's pipeline.
    static func install(on channel: any Channel, statistics: ModalServeStatistics) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
                RedundantResetFilter(statistics: statistics), position: .first)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let count = buffer.readableBytes
        // Byte ranges of this read to drop: the end of a frame dropped in the last read, then frames dropped now.
        var drops: [Range<Int>] = []
        var dropNext = self.dropNext
        if dropNext > 0 {
            drops.append(0..<min(dropNext, count))
            dropNext -= drops[0].count
        }
        // The start of a header split between the last read and this one, held back until it was complete.
        var withheld = self.withheld
        var streams = self.streams
        var dropped = 0
        inbound.scan(buffer.readableBytesView) { event in
            guard case .frame(let header, let offset) = event else { return }
            guard header.type == FrameHeader.rstStream, streams.isClosed(header.streamID) else {
                streams.noteFrame(header, fromClient: true)
                return
            }
            // A header that began in the last read starts at a negative offset, in `withheld`.
            if offset < 0 { withheld = [] }
            let frameEnd = offset + FrameHeader.length + Int(header.length)
            drops.append(max(0, offset)..<min(frameEnd, count))
            dropNext = max(0, frameEnd - count)
            streams.forget(header.streamID)
            dropped += 1
        }
        self.streams = streams
        self.dropNext = dropNext
        for _ in 0..<dropped { statistics.countIgnoredReset() }
        // A header that this read does not complete is held back with the next read's bytes (a reset is dropped whole
        // or passed whole, wherever the reads split it).
        let tail = inbound.pendingHeaderBytes
        if tail > count {
            // The header began before this read and goes on past it: hold this read back with it.
            self.withheld = withheld + buffer.readableBytesView
            withheld = []
            drops.append(0..<count)
        } else {
            self.withheld = Array(buffer.readableBytesView.suffix(tail))
            if tail > 0 { drops.append((count - tail)..<count) }
        }
        guard !drops.isEmpty || !withheld.isEmpty else {
            context.fireChannelRead(data)
            return
        }
        var kept = context.channel.allocator.buffer(capacity: withheld.count + count)
        kept.writeBytes(withheld)
        var from = 0
        for range in drops {
            if range.lowerBound > from {
                kept.writeImmutableBuffer(
                    buffer.getSlice(at: buffer.readerIndex + from, length: range.lowerBound - from)!)
            }
            from = max(from, range.upperBound)
        }
        if from < count {
            kept.writeImmutableBuffer(buffer.getSlice(at: buffer.readerIndex + from, length: count - from)!)
        }
        if kept.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(kept)) }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .byteBuffer(let buffer):
            outbound.scan(buffer.readableBytesView) { event in
                if case .frame(let header, _) = event { streams.noteFrame(header, fromClient: false) }
            }
        case .fileRegion(let region):
            outbound.skipNext(region.readableBytes)
        }
        context.write(data, promise: promise)
    }
}

/// The 9-byte header of an HTTP/2 frame (RFC 9113, section 4.1).
struct FrameHeader: Equatable {
    static let length = 9
    static let data: UInt8 = 0x0
    static let headers: UInt8 = 0x1
    static let rstStream: UInt8 = 0x3
    static let endStreamFlag: UInt8 = 0x1

    var length: UInt32
    var type: UInt8
    var flags: UInt8
    var streamID: UInt32

    init(length: UInt32, type: UInt8, flags: UInt8, streamID: UInt32) {
        self.length = length
        self.type = type
        self.flags = flags
        self.streamID = streamID
    }

    init<Bytes: Collection<UInt8>>(_ bytes: Bytes) where Bytes.Index == Int {
        let base = bytes.startIndex
        length = UInt32(bytes[base]) << 16 | UInt32(bytes[base + 1]) << 8 | UInt32(bytes[base + 2])
        type = bytes[base + 3]
        flags = bytes[base + 4]
        streamID =
            (UInt32(bytes[base + 5]) << 24 | UInt32(bytes[base + 6]) << 16 | UInt32(bytes[base + 7]) << 8
                | UInt32(bytes[base + 8])) & 0x7fff_ffff
    }

    /// Whether the frame ends its sender's side of the stream.
    var endsStream: Bool {
        (type == Self.data || type == Self.headers) && flags & Self.endStreamFlag != 0
    }
}

/// Finds the frame headers in one direction of an HTTP/2 byte stream that arrives in pieces of any size.
struct FrameScanner {
    enum Event {
        /// A whole frame header, at this offset of the piece scanned (negative when it began in an earlier piece).
        case frame(FrameHeader, offset: Int)
    }

    /// Preface bytes still to pass over.
    private var prefaceRemaining: Int
    /// Payload bytes of the current frame still to pass over.
    private var payloadRemaining = 0
    /// The start of a header split between pieces.
    private var partialHeader: [UInt8] = []

    init(prefaceLength: Int) {
        prefaceRemaining = prefaceLength
    }

    /// How many bytes of a frame header the pieces scanned so far end with (0 to 8).
    var pendingHeaderBytes: Int { partialHeader.count }

    /// Passes over `count` more bytes, beyond the piece last scanned.
    mutating func skipNext(_ count: Int) {
        payloadRemaining += count
    }

    /// Reads one piece, calling `body` for each frame header whose last byte is in it.
    mutating func scan(_ bytes: ByteBufferView, _ body: (Event) -> Void) {
        var index = bytes.startIndex
        let end = bytes.endIndex
        while index < end {
            if prefaceRemaining > 0 {
                let step = min(prefaceRemaining, end - index)
                prefaceRemaining -= step
                index += step
            } else if payloadRemaining > 0 {
                let step = min(payloadRemaining, end - index)
                payloadRemaining -= step
                index += step
            } else if !partialHeader.isEmpty || end - index < FrameHeader.length {
                let step = min(FrameHeader.length - partialHeader.count, end - index)
                partialHeader.append(contentsOf: bytes[index..<(index + step)])
                index += step
                guard partialHeader.count == FrameHeader.length else { continue }
                let header = FrameHeader(partialHeader)
                partialHeader.removeAll(keepingCapacity: true)
                payloadRemaining = Int(header.length)
                body(.frame(header, offset: index - bytes.startIndex - FrameHeader.length))
            } else {
                let header = FrameHeader(bytes[index..<(index + FrameHeader.length)])
                body(.frame(header, offset: index - bytes.startIndex))
                index += FrameHeader.length
                payloadRemaining = Int(header.length)
            }
        }
    }
}

/// Which ends of each stream have closed, and the streams closed at both (the most recent
/// ``RedundantResetFilter/closedStreamMemory``).
struct StreamEnds {
    private struct Ends {
        var client = false
        var server = false
    }

    private var open: [UInt32: Ends] = [:]
    private var closed: Set<UInt32> = []
    private var closedOrder: [UInt32] = []
    private var closedOrderStart = 0

    func isClosed(_ streamID: UInt32) -> Bool { closed.contains(streamID) }

    mutating func forget(_ streamID: UInt32) {
        closed.remove(streamID)
    }

    mutating func noteFrame(_ header: FrameHeader, fromClient: Bool) {
        guard header.streamID != 0 else { return }
        if header.type == FrameHeader.rstStream {
            close(header.streamID)
            return
        }
        guard header.endsStream else { return }
        var ends = open[header.streamID, default: Ends()]
        if fromClient { ends.client = true } else { ends.server = true }
        if ends.client && ends.server {
            close(header.streamID)
        } else {
            open[header.streamID] = ends
        }
    }

    private mutating func close(_ streamID: UInt32) {
        open[streamID] = nil
        guard closed.insert(streamID).inserted else { return }
        closedOrder.append(streamID)
        if closedOrder.count - closedOrderStart > RedundantResetFilter.closedStreamMemory {
            closed.remove(closedOrder[closedOrderStart])
            closedOrderStart += 1
            if closedOrderStart > RedundantResetFilter.closedStreamMemory {
                closedOrder.removeFirst(closedOrderStart)
                closedOrderStart = 0
            }
        }
    }
}
