import Foundation
import SandboxVCR
import Synchronization

/// `cassette import`: the input as JSON Lines (``Cassette/importJSONLines(_:progress:)``), then as raw exchanges in
/// a `.jsonl` and in a `.json` file (``Cassette/importExchanges(from:matcher:redactor:)``), into a scratch cassette
/// in memory (`/dev/shm`). Only ``CassetteError`` may be thrown. JSON Lines that import are exported, and
/// importing that export changes nothing: the next export is the same bytes.
enum CassetteImportTarget: FuzzTarget {
    static let name = "cassette-import"

    static func run(_ input: [UInt8]) throws(FuzzFailure) {
        let data = Data(input)
        let cassette = ScratchCassette.shared.clean()
        do {
            let imported = try Blocking.run { try await cassette.importJSONLines(data) }
            if imported > 0 {
                ScratchCassette.shared.markDirty()
                try checkExportRoundTrip(cassette, input: input)
            }
        } catch let failure as FuzzFailure {
            throw failure
        } catch {
            try expectCassetteError(error, "importJSONLines", input: input)
        }
        for fileExtension in ["jsonl", "json"] {
            let file = FuzzScratch.folder.appendingPathComponent("exchanges.\(fileExtension)")
            do {
                try data.write(to: file)
                let report = try Blocking.run { try await cassette.importExchanges(from: [file]) }
                if report.imported > 0 { ScratchCassette.shared.markDirty() }
            } catch {
                try expectCassetteError(error, "importExchanges (.\(fileExtension))", input: input)
            }
        }
    }

    static func expectCassetteError(_ error: any Error, _ operation: String, input: [UInt8]) throws(FuzzFailure) {
        guard error is CassetteError else {
            throw FuzzFailure("\(operation) threw \(type(of: error)): \(error); input: \(preview(input))")
        }
    }

    /// Importing a cassette's own export is a no-op.
    static func checkExportRoundTrip(_ cassette: Cassette, input: [UInt8]) throws(FuzzFailure) {
        do {
            let export = try Blocking.run { try await cassette.exportJSONLines() }
            _ = try Blocking.run { try await cassette.importJSONLines(export) }
            let again = try Blocking.run { try await cassette.exportJSONLines() }
            guard again == export else {
                throw FuzzFailure(
                    "re-importing an export changed the cassette: \(preview(export, limit: 600)) became "
                        + "\(preview(again, limit: 600)); input: \(preview(input))")
            }
        } catch let failure as FuzzFailure {
            throw failure
        } catch {
            throw FuzzFailure(
                "the JSON Lines imported, but export and re-import failed: \(error); input: \(preview(input))")
        }
    }

    // MARK: Seeds

    static func seeds(fixtures: URL) throws -> [FuzzSeed] {
        var seeds: [FuzzSeed] = []
        // Raw exchanges: single samples, and a few grading-demo lines together.
        for sample in try SandboxFusionSampleFiles.exchanges(in: fixtures)
        where ["01-", "07-", "13-", "14-", "16-", "19-", "22-", "43-"].contains(where: sample.name.hasPrefix) {
            seeds.append(FuzzSeed("exchange-\(sample.name)", sample.file))
        }
        let demo = try GradingDemoFiles.lines(in: fixtures)
        seeds.append(FuzzSeed("grading-demo-lines", Data(demo.prefix(3).joined(separator: Data("\n".utf8)))))
        // Exported interactions, one and three per seed.
        for (index, file) in ["grading-demo/cassette.sqlite", "cassettes/schema-v1-demo.sqlite"].enumerated() {
            let lines = try FixtureCassette.exportedLines(fixtures.appendingPathComponent(file))
            for (number, line) in lines.prefix(index == 0 ? 6 : 3).enumerated() {
                seeds.append(FuzzSeed("export-\(index)-\(number)", line))
            }
            seeds.append(FuzzSeed("export-\(index)-three", Data(lines.prefix(3).joined(separator: Data("\n".utf8)))))
        }
        return seeds
    }
}

/// The cassette the import target writes into: one file in the scratch folder, replaced by a fresh one when an
/// import has written to it (so each check starts from an empty cassette) or after many uses.
final class ScratchCassette: Sendable {
    static let shared = ScratchCassette()

    private struct State {
        var cassette: Cassette?
        var dirty = false
        var generation = 0
    }

    private let state = Mutex(State())

    /// An empty cassette.
    func clean() -> Cassette {
        state.withLock { state in
            if let cassette = state.cassette, !state.dirty { return cassette }
            if let old = state.cassette {
                Self.remove(old)
            }
            state.generation += 1
            let url = FuzzScratch.folder.appendingPathComponent("import-\(state.generation).sqlite")
            do {
                let cassette = try Blocking.run { try await Cassette.open(at: url) }
                state.cassette = cassette
                state.dirty = false
                return cassette
            } catch {
                fatalError("cannot open a scratch cassette at \(url.path): \(error)")
            }
        }
    }

    func markDirty() { state.withLock { $0.dirty = true } }

    private static func remove(_ cassette: Cassette) {
        _ = try? Blocking.run { await cassette.close() }
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: cassette.url.path + suffix) }
    }
}

extension FixtureCassette {
    /// A committed cassette's JSON Lines export, one `Data` per line (without the newline).
    static func exportedLines(_ url: URL) throws -> [Data] {
        let copy = FuzzScratch.folder.appendingPathComponent("fixture-\(UUID().uuidString).sqlite")
        try FileManager.default.copyItem(at: url, to: copy)
        defer {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: copy.path + suffix) }
        }
        let export = try Blocking.run {
            let cassette = try await Cassette.open(at: copy)
            let export = try await cassette.exportJSONLines()
            await cassette.close()
            return export
        }
        return export.split(separator: UInt8(ascii: "\n")).map { Data($0) }
    }
}
