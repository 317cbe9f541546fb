internal import Synchronization

/// Every request key a cassette holds, as a fixed-size Bloom filter, so that record mode `missing` can tell that a
/// request was never recorded without a round trip to the SQLite thread.
///
/// The filter answers only while this connection knows every key in the file: the cassette was empty when it was
/// opened, every key it writes is added before the write is queued, and no other connection (another process, or
/// another ``Cassette`` on the same file) has committed since. The SQLite thread checks the last point with
/// `PRAGMA data_version` whenever it starts a transaction; a change turns the filter off for good. Because a
/// check can be up to ``freshness`` old, a recording another connection committed in the last few tens of
/// milliseconds may be recorded again (the newer row replaces it; nothing is duplicated), the same race two
/// processes recording one request at once always have. Keys deleted later stay in the filter, which only makes
/// it answer "maybe" more often. Memory is constant: 256 KB, allocated only for a cassette opened empty.
final class KnownKeys: Sendable {
    /// Bits in the filter (2^21: about 0.3% false "maybe"s at 100,000 keys, with three bits per key).
    static let bitCount = 1 << 21
    /// How old the last `data_version` check may be for the filter to be used.
    static let freshness = Duration.milliseconds(25)

    private struct State {
        var bits: [UInt64] = []
        var isComplete = false
        var checkedAt = ContinuousClock.Instant.now
        var dataVersion: Int64 = 0
    }

    private let state = Mutex(State())

    /// Starts the filter for a cassette that holds no interaction, as of `dataVersion` (SQLite thread).
    func startEmpty(dataVersion: Int64) {
        state.withLock { state in
            state.bits = [UInt64](repeating: 0, count: Self.bitCount / 64)
            state.isComplete = true
            state.dataVersion = dataVersion
            state.checkedAt = .now
        }
    }

    /// Whether the filter is in use: complete, and checked recently.
    var isUsable: Bool {
        state.withLock { $0.isComplete && ContinuousClock.now - $0.checkedAt <= Self.freshness }
    }

    /// Whether the filter is complete (no other connection committed since it started).
    var isComplete: Bool { state.withLock { $0.isComplete } }

    /// Notes a key about to be written. Call before the write is queued, so a later lookup cannot miss it.
    func insert(_ key: SHA256.Digest) {
        let (first, second, third) = Self.positions(key)
        state.withLock { state in
            guard state.isComplete else { return }
            for position in [first, second, third] { state.bits[position >> 6] |= 1 << UInt64(position & 63) }
        }
    }

    /// `true` only when the cassette certainly holds no recording of `key`; `false` means "look it up".
    func certainlyLacks(_ key: SHA256.Digest) -> Bool {
        let (first, second, third) = Self.positions(key)
        return state.withLock { state in
            guard state.isComplete, ContinuousClock.now - state.checkedAt <= Self.freshness else { return false }
            func isSet(_ position: Int) -> Bool { state.bits[position >> 6] & (1 << UInt64(position & 63)) != 0 }
            return !(isSet(first) && isSet(second) && isSet(third))
        }
    }

    /// Records a `PRAGMA data_version` read at the start of a transaction (SQLite thread): unchanged keeps the
    /// filter fresh; changed means another connection committed, and turns it off.
    func checked(dataVersion: Int64) {
        state.withLock { state in
            guard state.isComplete else { return }
            if dataVersion == state.dataVersion {
                state.checkedAt = .now
            } else {
                state.isComplete = false
                state.bits = []
            }
        }
    }

    /// Three bit positions from the key's first bytes (a SHA-256 digest is uniformly distributed already).
    private static func positions(_ key: SHA256.Digest) -> (Int, Int, Int) {
        key.withUnsafeBytes { bytes in
            let mask = UInt64(bitCount - 1)
            let first = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
            let second = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            let third = bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
            return (Int(first & mask), Int(second & mask), Int(third & mask))
        }
    }
}
