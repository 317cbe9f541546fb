package import Foundation

/// Values a client invented (a random workdir, a request id) bound to the values a recording has in their place.
///
/// Text is compared token by token: a token is a run of ASCII letters, digits, `-` and `_`. Two tokens that differ
/// can be bound when both look invented (``isInvented(_:)``) and have the same length; once bound, a recorded token
/// stands for its live value in every later step of the sandbox (and the live value for it), and replayed output
/// shows the live value.
package struct TokenBindings: Hashable, Sendable {
    /// Recorded token → live token.
    package private(set) var recordedToLive: [String: String] = [:]
    private var liveToRecorded: [String: String] = [:]
    /// Recorded token → the step that introduced it.
    package private(set) var introducedAt: [String: Int] = [:]

    package init() {}

    package var isEmpty: Bool { recordedToLive.isEmpty }

    /// Whether a token looks invented by a client: 8 or more hex digits and dashes with at least one digit (hex ids,
    /// UUIDs), or 10 or more token characters mixing letters and digits (base-36/62 ids).
    package static func isInvented(_ token: some Collection<UInt8>) -> Bool {
        var digits = 0
        var letters = 0
        var nonHexLetters = 0
        for byte in token {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits += 1
            case UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"): letters += 1
            case UInt8(ascii: "g")...UInt8(ascii: "z"), UInt8(ascii: "G")...UInt8(ascii: "Z"), UInt8(ascii: "_"):
                letters += 1
                nonHexLetters += 1
            default: break
            }
        }
        let count = token.count
        if count >= 8, digits > 0, nonHexLetters == 0 { return true }
        return count >= 10 && digits > 0 && letters > 0
    }

    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"), UInt8(ascii: "_"):
            return true
        default: return false
        }
    }

    /// The pieces of `bytes`: token runs and the bytes between them, alternating.
    static func pieces(_ bytes: some Collection<UInt8>) -> [(isToken: Bool, bytes: ArraySlice<UInt8>)] {
        let array = Array(bytes)
        var pieces: [(Bool, ArraySlice<UInt8>)] = []
        var start = 0
        while start < array.count {
            let isToken = isTokenByte(array[start])
            var end = start + 1
            while end < array.count, isTokenByte(array[end]) == isToken { end += 1 }
            pieces.append((isToken, array[start..<end]))
            start = end
        }
        return pieces
    }

    /// The shape of `bytes`: every invented-looking token replaced by a marker and its length, so that two texts
    /// that could match under some bindings have the same shape.
    static func shape(_ bytes: some Collection<UInt8>, into output: inout [UInt8]) {
        for piece in pieces(bytes) {
            if piece.isToken, isInvented(piece.bytes) {
                output.append(0)
                output.append(contentsOf: Array(String(piece.bytes.count).utf8))
                output.append(0)
            } else {
                output.append(contentsOf: piece.bytes)
            }
        }
    }

    /// These bindings extended so that `live` matches `recorded`, or `nil` when it cannot.
    package func matching(live: some Collection<UInt8>, recorded: some Collection<UInt8>, step: Int) -> TokenBindings? {
        if live.elementsEqual(recorded) { return self }
        let livePieces = Self.pieces(live)
        let recordedPieces = Self.pieces(recorded)
        guard livePieces.count == recordedPieces.count else { return nil }
        var result = self
        for (livePiece, recordedPiece) in zip(livePieces, recordedPieces) {
            if livePiece.bytes.elementsEqual(recordedPiece.bytes) { continue }
            guard livePiece.isToken, recordedPiece.isToken else { return nil }
            let liveToken = String(decoding: livePiece.bytes, as: UTF8.self)
            let recordedToken = String(decoding: recordedPiece.bytes, as: UTF8.self)
            if let bound = result.recordedToLive[recordedToken] {
                guard bound == liveToken else { return nil }
                continue
            }
            guard result.liveToRecorded[liveToken] == nil, livePiece.bytes.count == recordedPiece.bytes.count,
                Self.isInvented(livePiece.bytes), Self.isInvented(recordedPiece.bytes)
            else { return nil }
            result.recordedToLive[recordedToken] = liveToken
            result.liveToRecorded[liveToken] = recordedToken
            result.introducedAt[recordedToken] = step
        }
        return result
    }

    /// `recorded` (replayed output) with every bound recorded token replaced by its live value.
    package func live(_ recorded: Data) -> Data {
        guard !recordedToLive.isEmpty, !recorded.isEmpty else { return recorded }
        var output = [UInt8]()
        output.reserveCapacity(recorded.count)
        var changed = false
        for piece in Self.pieces(recorded) {
            if piece.isToken, let live = recordedToLive[String(decoding: piece.bytes, as: UTF8.self)] {
                output.append(contentsOf: Array(live.utf8))
                changed = true
            } else {
                output.append(contentsOf: piece.bytes)
            }
        }
        return changed ? Data(output) : recorded
    }

    /// The bindings for miss diagnostics, one a line: `recorded → live (since step N)`.
    package var description: [String] {
        recordedToLive.sorted { $0.key < $1.key }.map { recorded, live in
            "\(recorded) → \(live) (since step \(introducedAt[recorded] ?? 0))"
        }
    }
}
