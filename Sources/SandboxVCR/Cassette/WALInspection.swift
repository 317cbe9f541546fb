internal import Foundation

/// Finds recordings SQLite would drop without a word: committed frames of a cassette's `-wal` file that its
/// recovery cannot read (damaged bytes, a damaged header, a file cut short).
///
/// SQLite replays a WAL frame by frame and stops at the first frame whose salt or running checksum is wrong, so
/// damage in the middle of a WAL silently discards every transaction after it, and a damaged header discards
/// them all. Run before any connection opens the file (the first one would recover, and the last one to close
/// would checkpoint the readable part and delete the rest).
///
/// Two sources say how much should be readable:
/// - the `-shm` wal-index, left by a process that was killed: its header (two equal copies with a valid checksum)
///   names the WAL's salts and its last committed frame, so a WAL that recovers to fewer frames lost some;
/// - without one, the frames themselves: a frame with the WAL's salts that fails the running checksum is damage
///   when a later frame is intact (checksummed from its predecessor's stored checksum); a torn last frame, what a
///   crash during a write leaves, was never acknowledged and is not reported.
///
/// Only a WAL nobody uses is inspected: a live one changes while it is read. Another process that has the database
/// open holds a lock on the `-shm` file's "dead man switch" byte; and this process must not open and close the
/// `-shm` file while one of its own connections uses it (closing any descriptor of a file drops every POSIX lock the
/// process holds on it), so ``Cassette`` skips the inspection when it has the file open already.
enum WALInspection {
    /// The byte of the `-shm` file every connection holds a shared lock on while the database is open.
    private static let deadManSwitchByte: off_t = 128

    /// A description of the damage, or `nil` when SQLite will read everything committed, the WAL is in use by
    /// another process, or there is no WAL.
    static func damage(walPath: String, shmPath: String) -> String? {
        guard let wal = try? Data(contentsOf: URL(fileURLWithPath: walPath), options: .alwaysMapped),
            !wal.isEmpty
        else { return nil }
        var shm: Data?
        let descriptor = open(shmPath, O_RDONLY | O_CLOEXEC)
        if descriptor >= 0 {
            defer { close(descriptor) }
            var lock = flock()
            lock.l_type = Int16(F_WRLCK)
            lock.l_whence = Int16(SEEK_SET)
            lock.l_start = deadManSwitchByte
            lock.l_len = 1
            // Another process has the database open: its WAL is live, and it has done this check itself.
            guard fcntl(descriptor, F_GETLK, &lock) == 0, lock.l_type == Int16(F_UNLCK) else { return nil }
            var header = [UInt8](repeating: 0, count: 96)
            if pread(descriptor, &header, 96, 0) == 96 { shm = Data(header) }
        }
        return wal.withUnsafeBytes { walBytes in
            let index = shm.flatMap { data in data.withUnsafeBytes { WALIndexHeader($0) } }
            return damage(wal: walBytes, index: index)
        }
    }

    static func damage(wal: UnsafeRawBufferPointer, index: WALIndexHeader?) -> String? {
        guard let header = WALHeader(wal) else {
            // Nothing of this WAL is readable. It matters only if it held frames.
            if let index, index.lastCommittedFrame > 0 {
                return "its header is damaged, so none of its \(index.lastCommittedFrame) committed frames can be read"
            }
            return wal.count > WALHeader.size
                ? "its header is damaged, so none of the \(wal.count - WALHeader.size) bytes after it can be read"
                : nil
        }
        let frameSize = WALHeader.frameHeaderSize + header.pageSize
        let frameCount = (wal.count - WALHeader.size) / frameSize
        var checksum = header.checksum
        var recovered = 0
        var firstBad: Int?
        for frame in 0..<frameCount {
            let offset = WALHeader.size + frame * frameSize
            let frameBytes = UnsafeRawBufferPointer(rebasing: wal[offset..<offset + frameSize])
            guard header.isIntact(frameBytes, seed: checksum) else {
                firstBad = frame
                break
            }
            checksum = WALHeader.storedChecksum(frameBytes)
            if WALHeader.word(frameBytes, 4) != 0 { recovered = frame + 1 }
        }
        if let index, index.salts == header.salts, index.lastCommittedFrame > recovered {
            return "\(index.lastCommittedFrame) frames were committed to it but only \(recovered) can be read "
                + "(damaged or cut short)"
        }
        guard let firstBad else { return nil }
        // Without a wal-index: an intact frame after the bad one was written whole, so the bad one is damage.
        for frame in (firstBad + 1)..<max(firstBad + 1, frameCount) {
            let offset = WALHeader.size + frame * frameSize
            let previous = UnsafeRawBufferPointer(rebasing: wal[offset - frameSize..<offset])
            let frameBytes = UnsafeRawBufferPointer(rebasing: wal[offset..<offset + frameSize])
            if header.isIntact(frameBytes, seed: WALHeader.storedChecksum(previous)) {
                return "frame \(firstBad + 1) of \(frameCount) is damaged, so the \(frameCount - firstBad) frames "
                    + "from it on cannot be read"
            }
        }
        return nil
    }
}

/// The 32-byte header of a WAL file (big-endian fields; see SQLite's file format, "WAL file format").
struct WALHeader {
    static let size = 32
    static let frameHeaderSize = 24

    var pageSize: Int
    var bigEndianChecksums: Bool
    /// Salt-1 and salt-2 as stored (the wal-index keeps the same bytes).
    var salts: UInt64
    var checksum: (UInt32, UInt32)

    /// `nil` when the magic number, version, page size or header checksum is wrong (SQLite ignores the WAL).
    init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= Self.size else { return nil }
        let magic = Self.word(bytes, 0)
        guard magic & 0xFFFF_FFFE == 0x377F_0682, Self.word(bytes, 4) == 3_007_000 else { return nil }
        let declared = Int(Self.word(bytes, 8))
        let pageSize = declared == 1 ? 65_536 : declared
        guard pageSize >= 512, pageSize <= 65_536, pageSize & (pageSize - 1) == 0 else { return nil }
        bigEndianChecksums = magic & 1 == 1
        let computed = Self.checksum(
            UnsafeRawBufferPointer(rebasing: bytes[0..<24]), bigEndian: bigEndianChecksums, seed: (0, 0))
        guard computed == (Self.word(bytes, 24), Self.word(bytes, 28)) else { return nil }
        self.pageSize = pageSize
        salts = bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        checksum = computed
    }

    /// Whether a frame belongs to this WAL (its salts) and its checksum follows from `seed`.
    func isIntact(_ frame: UnsafeRawBufferPointer, seed: (UInt32, UInt32)) -> Bool {
        guard frame.loadUnaligned(fromByteOffset: 8, as: UInt64.self) == salts, Self.word(frame, 0) != 0 else {
            return false
        }
        var sum = Self.checksum(
            UnsafeRawBufferPointer(rebasing: frame[0..<8]), bigEndian: bigEndianChecksums, seed: seed)
        sum = Self.checksum(
            UnsafeRawBufferPointer(rebasing: frame[Self.frameHeaderSize...]), bigEndian: bigEndianChecksums, seed: sum)
        return sum == Self.storedChecksum(frame)
    }

    /// The running checksum a frame header stores.
    static func storedChecksum(_ frame: UnsafeRawBufferPointer) -> (UInt32, UInt32) {
        (word(frame, 16), word(frame, 20))
    }

    /// A big-endian 32-bit field.
    static func word(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
        UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    /// SQLite's WAL checksum (`walChecksumBytes`): two running sums over 32-bit words, eight bytes at a time.
    static func checksum(
        _ bytes: UnsafeRawBufferPointer, bigEndian: Bool, seed: (UInt32, UInt32)
    ) -> (UInt32, UInt32) {
        var (s1, s2) = seed
        var offset = 0
        while offset + 8 <= bytes.count {
            let raw0 = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
            let raw1 = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let x0 = bigEndian ? UInt32(bigEndian: raw0) : UInt32(littleEndian: raw0)
            let x1 = bigEndian ? UInt32(bigEndian: raw1) : UInt32(littleEndian: raw1)
            s1 = s1 &+ x0 &+ s2
            s2 = s2 &+ x1 &+ s1
            offset += 8
        }
        return (s1, s2)
    }
}

/// The header of the `-shm` wal-index that SQLite keeps beside a WAL (two 48-byte copies, native byte order).
struct WALIndexHeader {
    /// The number of the last frame of the last committed transaction.
    var lastCommittedFrame: Int
    /// The WAL header's salts, as stored there.
    var salts: UInt64

    /// `nil` unless both copies are equal, initialised, and their checksum holds (a half-written index says nothing).
    init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 96, bytes[12] == 1 else { return nil }
        guard memcmp(bytes.baseAddress!, bytes.baseAddress! + 48, 48) == 0 else { return nil }
        let computed = WALHeader.checksum(
            UnsafeRawBufferPointer(rebasing: bytes[0..<40]), bigEndian: Self.isBigEndianMachine, seed: (0, 0))
        let stored = (
            bytes.loadUnaligned(fromByteOffset: 40, as: UInt32.self),
            bytes.loadUnaligned(fromByteOffset: 44, as: UInt32.self)
        )
        guard computed == stored else { return nil }
        lastCommittedFrame = Int(bytes.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        salts = bytes.loadUnaligned(fromByteOffset: 32, as: UInt64.self)
    }

    private static let isBigEndianMachine = 1.bigEndian == 1
}
