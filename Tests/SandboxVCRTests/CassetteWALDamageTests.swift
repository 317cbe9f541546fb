import Foundation
import SandboxVCR
import Testing

/// A killed recorder leaves its recordings in the `-wal` file; damage to it must be reported, never dropped in
/// silence (issue 12 item 5). The WAL comes from a real SIGKILL of `cassette-stress` recording.
@Suite(.serialized) struct CassetteWALDamageTests {
    let folder = TemporaryFolder()

    /// Records 40 interactions in a process that is then killed: the cassette, its `-wal` and its `-shm`.
    private func killedRecorder(named name: String = "killed.sqlite") async throws -> URL {
        let tool = try #require(CassetteFileTests.stressTool(), "build cassette-stress (swift build --build-tests)")
        let url = folder.file(name)
        let run = try await CassetteFileTests.run(tool, ["crash", url.path, "40"])
        try #require(run.status == SIGKILL)
        for suffix in ["-wal", "-shm"] {
            try #require(FileManager.default.fileExists(atPath: url.path + suffix), "no \(suffix) after the kill")
        }
        return url
    }

    /// A copy of the three files under a new name, the WAL changed by `damage`, with or without the `-shm`.
    private func copy(
        _ url: URL, named name: String, keepingIndex: Bool = true, damage: (inout [UInt8]) -> Void = { _ in }
    ) throws -> URL {
        let target = folder.file(name)
        try FileManager.default.copyItem(at: url, to: target)
        var wal = [UInt8](try Data(contentsOf: URL(fileURLWithPath: url.path + "-wal")))
        damage(&wal)
        try Data(wal).write(to: URL(fileURLWithPath: target.path + "-wal"))
        if keepingIndex {
            try FileManager.default.copyItem(atPath: url.path + "-shm", toPath: target.path + "-shm")
        }
        return target
    }

    private func expectRefused(_ url: URL, _ detail: String) async throws {
        let error = try await #require(throws: CassetteError.self) { try await Cassette.open(at: url) }
        #expect(error.code == .corrupted)
        #expect(error.message.contains("cannot be read"), "\(error.message)")
        #expect(error.message.contains(detail), "\(error.message)")
        // Nothing was opened: the damaged WAL is still there, unchanged in size.
        #expect(FileManager.default.fileExists(atPath: url.path + "-wal"))
    }

    @Test func damageInTheWALIsReportedNotDropped() async throws {
        var url = try await killedRecorder(named: "killed-0.sqlite")
        // Frames of the WAL's current generation: the leading ones with its salts (after a checkpoint SQLite
        // writes over the file from the start, and older frames beyond them do not count).
        let frames = { (wal: [UInt8]) -> Int in
            var count = 0
            while 32 + (count + 1) * (24 + 4096) <= wal.count,
                wal[32 + count * (24 + 4096) + 8..<32 + count * (24 + 4096) + 16] == wal[16..<24]
            {
                count += 1
            }
            return count
        }
        // Intact: every committed recording is there.
        let intact = try copy(url, named: "intact.sqlite")
        let cassette = try await Cassette.open(at: intact)
        #expect(try await cassette.count() >= 40)
        #expect(try await cassette.verify().isOK)
        await cassette.close()

        // The kill may land just after SQLite started the WAL over (a new generation with no frames yet): then
        // there is nothing to damage, so record again.
        for attempt in 1..<5 {
            let wal = [UInt8](try Data(contentsOf: URL(fileURLWithPath: url.path + "-wal")))
            if frames(wal) >= 3 { break }
            url = try await killedRecorder(named: "killed-\(attempt).sqlite")
        }
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: url.path + "-wal")))
        try #require(frames(original) >= 3, "too few frames in the WAL to damage one in the middle")
        // A few bytes changed in the middle, with and without the wal-index.
        let middle = { (wal: inout [UInt8]) in
            let frame = frames(wal) / 2
            for offset in 0..<4 { wal[32 + frame * (24 + 4096) + 24 + 100 + offset] ^= 0x5A }
        }
        try await expectRefused(try copy(url, named: "middle.sqlite", damage: middle), "committed to it")
        try await expectRefused(
            try copy(url, named: "middle-no-index.sqlite", keepingIndex: false, damage: middle), "is damaged")
        // The header (a salt byte): nothing of the WAL would be read.
        try await expectRefused(
            try copy(url, named: "header.sqlite") { $0[18] ^= 0xFF }, "none of its")
        try await expectRefused(
            try copy(url, named: "header-no-index.sqlite", keepingIndex: false) { $0[18] ^= 0xFF }, "header is damaged")
        // Cut short: the wal-index knows how many frames were committed.
        try await expectRefused(
            try copy(url, named: "cut.sqlite") { $0.removeLast($0.count - 32 - frames($0) / 2 * (24 + 4096)) },
            "committed to it")
    }

    @Test func aTornLastFrameIsNotDamage() async throws {
        // What a crash during a write leaves (a partial last frame, never acknowledged): SQLite drops it, and so
        // may we. Without the wal-index nothing says more was committed.
        let url = try await killedRecorder()
        let torn = try copy(url, named: "torn.sqlite", keepingIndex: false) { $0.removeLast(1000) }
        let cassette = try await Cassette.open(at: torn)
        #expect(try await cassette.count() > 0)
        #expect(try await cassette.verify().isOK)
        await cassette.close()
    }
}
