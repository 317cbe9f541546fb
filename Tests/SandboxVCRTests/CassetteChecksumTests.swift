import Foundation
import GRDB
import SandboxVCR
import SandboxVCRTesting
import Testing

/// A changed byte in a stored record or blob is a `corrupted` error on replay, and `verify` finds it (issue 12).
@Suite struct CassetteChecksumTests {
    let folder = TemporaryFolder()

    /// Replaces the first `from` in column `column` of `table` by `to` (same length), outside the cassette API.
    private func damage(_ table: String, _ column: String, in url: URL, replacing from: String, with to: String) throws
    {
        let queue = try DatabaseQueue(path: url.path)
        defer { try? queue.close() }
        let changed = try queue.write { db -> Bool in
            for row in try Row.fetchAll(db, sql: "SELECT rowid, \(column) FROM \(table)") {
                let rowid: Int64 = row[0]
                var bytes = [UInt8]((row[1] as Data?) ?? Data())
                let needle = Array(from.utf8)
                guard
                    let start = (0...max(0, bytes.count - needle.count)).first(where: {
                        bytes.count >= needle.count && Array(bytes[$0..<$0 + needle.count]) == needle
                    })
                else { continue }
                bytes.replaceSubrange(start..<start + needle.count, with: Array(to.utf8))
                try db.execute(
                    sql: "UPDATE \(table) SET \(column) = ? WHERE rowid = ?", arguments: [Data(bytes), rowid])
                return true
            }
            return false
        }
        try #require(changed, "no \(from) in \(table).\(column)")
    }

    /// Flips one bit in the middle of every stored blob.
    private func flipBlobBits(in url: URL) throws {
        let queue = try DatabaseQueue(path: url.path)
        defer { try? queue.close() }
        try queue.write { db in
            for row in try Row.fetchAll(db, sql: "SELECT rowid, bytes FROM blobs") {
                let rowid: Int64 = row[0]
                var bytes = [UInt8]((row[1] as Data?) ?? Data())
                bytes[bytes.count / 2] ^= 0x04
                try db.execute(sql: "UPDATE blobs SET bytes = ? WHERE rowid = ?", arguments: [Data(bytes), rowid])
            }
        }
    }

    private func record(_ stdout: String, code: String, into url: URL) async throws {
        let fake = FakeExecutor(default: .success(stdout: stdout))
        try await Cassette.withCassette(at: url) { cassette in
            _ = try await RecordingExecutor(cassette: cassette, mode: .missing, live: fake)
                .execute(ExecutionRequest(code: code, language: .python))
        }
    }

    @Test func aFlippedByteInAnInlineAnswerIsNotReplayed() async throws {
        let url = folder.file("inline.sqlite")
        try await record("7\n", code: "print(3 + 4)", into: url)
        try damage("interactions", "outcome", in: url, replacing: "7\n", with: "8\n")
        let cassette = try await Cassette.open(at: url, readOnly: true)
        let error = try await #require(throws: CassetteError.self) {
            try await RecordingExecutor(cassette: cassette, mode: .never)
                .execute(ExecutionRequest(code: "print(3 + 4)", language: .python))
        }
        #expect(error.code == .corrupted)
        #expect(error.message.contains("outcome record of interaction 1 does not match its checksum"))
        let report = try await cassette.verify()
        #expect(!report.isOK)
        #expect(report.unreadableInteractions == [1])
        await cassette.close()
    }

    @Test func aFlippedByteInARequestIsFoundByVerify() async throws {
        let url = folder.file("request.sqlite")
        try await record("7\n", code: "print(3 + 4)", into: url)
        try damage("interactions", "request", in: url, replacing: "3 + 4", with: "3 + 5")
        let cassette = try await Cassette.open(at: url, readOnly: true)
        let report = try await cassette.verify()
        #expect(report.unreadableInteractions == [1])
        await #expect(throws: CassetteError.self) { try await cassette.interactions() }
        await cassette.close()
    }

    @Test func aFlippedByteInABlobIsNotReplayed() async throws {
        let url = folder.file("blob.sqlite")
        // Output too large to sit inline: it is stored as a blob.
        let stdout = (0..<40).map { "line \($0 * 7919 % 1000) of the answer\n" }.joined()
        try await record(stdout, code: "print(big)", into: url)
        try flipBlobBits(in: url)
        let cassette = try await Cassette.open(at: url, readOnly: true)
        let error = try await #require(throws: CassetteError.self) {
            try await RecordingExecutor(cassette: cassette, mode: .never)
                .execute(ExecutionRequest(code: "print(big)", language: .python))
        }
        #expect(error.code == .corrupted)
        #expect(error.message.contains("does not match its checksum"))
        #expect(try await cassette.verify().damagedBlobs.count == 1)
        await cassette.close()
    }

    @Test func theDemoCassetteWithOneDigitChangedIsRefused() async throws {
        // The reproduction: a 7 of a stored stdout changed to 8 in the committed demo cassette.
        let url = folder.file("demo.sqlite")
        try FileManager.default.copyItem(
            at: packageRoot().appendingPathComponent("Fixtures/grading-demo/cassette.sqlite"), to: url)
        let cassette = try await Cassette.open(at: url, readOnly: true)
        #expect(try await cassette.verify().isOK)
        await cassette.close()
        try damage("interactions", "outcome", in: url, replacing: "7\n", with: "8\n")
        let damaged = try await Cassette.open(at: url, readOnly: true)
        let report = try await damaged.verify()
        #expect(report.unreadableInteractions.count == 1)
        await damaged.close()
    }
}
