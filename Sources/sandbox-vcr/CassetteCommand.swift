import ArgumentParser
import Foundation
import SandboxVCR

#if canImport(Glibc)
    import Glibc
#endif

/// `sandbox-vcr cassette`: inspect, convert and maintain cassettes.
struct CassetteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cassette",
        abstract: "Inspect, convert and maintain cassettes.",
        subcommands: [
            Stats.self, Show.self, Browse.self, Export.self, Import.self, Merge.self, Prune.self, Verify.self,
            Migrate.self,
        ])

    /// `ls` / `stats`: counts, sizes, dedupe ratio, backends, ages, unused.
    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stats", abstract: "Show counts, sizes, dedupe ratio, backends, ages and unused recordings.",
            aliases: ["ls"])

        @Argument(help: "Cassette files (.sqlite).")
        var cassettes: [String]

        @Flag(help: "Print JSON.")
        var json = false

        func run() async throws {
            var rows: [[String: Any]] = []
            for path in cassettes {
                let cassette = try await Cassette.open(at: URL(fileURLWithPath: path), readOnly: true, create: false)
                let stats = try await cassette.statistics()
                await cassette.close()
                if json {
                    var row: [String: Any] = [
                        "path": path, "interactions": stats.interactions, "file_bytes": stats.fileSize,
                        "blob_count": stats.blobCount, "stored_bytes": stats.storedBytes,
                        "logical_bytes": stats.logicalBytes, "dedupe_ratio": stats.dedupeRatio,
                        "backends": stats.backends, "never_replayed": stats.neverReplayed,
                    ]
                    let formatter = ISO8601DateFormatter()
                    if let oldest = stats.oldest { row["oldest"] = formatter.string(from: oldest) }
                    if let newest = stats.newest { row["newest"] = formatter.string(from: newest) }
                    rows.append(row)
                } else {
                    print(Self.render(path: path, stats))
                }
            }
            if json {
                let data = try JSONSerialization.data(
                    withJSONObject: cassettes.count == 1 ? rows[0] : rows, options: [.sortedKeys, .prettyPrinted])
                print(String(decoding: data, as: UTF8.self))
            }
        }

        static func render(path: String, _ stats: Cassette.Statistics) -> String {
            let formatter = ISO8601DateFormatter()
            let bytes = ByteCountText.describing
            let backends = stats.backends.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                .joined(separator: ", ")
            return """
                \(path)
                  interactions:   \(stats.interactions) (\(stats.neverReplayed) never replayed)
                  file size:      \(bytes(stats.fileSize))
                  blobs:          \(stats.blobCount) holding \(bytes(stats.storedBytes)) for \(bytes(stats.logicalBytes)) of content (dedupe \(String(format: "%.1f", stats.dedupeRatio))x)
                  backends:       \(backends.isEmpty ? "-" : backends)
                  recorded:       \(stats.oldest.map(formatter.string(from:)) ?? "-") .. \(stats.newest.map(formatter.string(from:)) ?? "-")
                """
        }
    }

    /// `show`: readable text for review and `git diff` (`git config diff.cassette.textconv "sandbox-vcr cassette show"`).
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a cassette as readable, stable text (a git diff text conversion).")

        @Argument(help: "The cassette file.")
        var cassette: String

        func run() async throws {
            let opened = try await Cassette.open(at: URL(fileURLWithPath: cassette), readOnly: true, create: false)
            let text = try await opened.showText()
            await opened.close()
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    /// `export`: JSON Lines, sorted by key then ordinal.
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Export a cassette to JSON Lines (stable order; import reads it back losslessly).")

        @Argument(help: "The cassette file.")
        var cassette: String

        @Option(name: .shortAndLong, help: "Write here instead of standard output.")
        var output: String?

        func run() async throws {
            let opened = try await Cassette.open(at: URL(fileURLWithPath: cassette), readOnly: true, create: false)
            let progress = ProgressBar(label: "export")
            let handle: FileHandle
            if let output {
                guard FileManager.default.createFile(atPath: output, contents: nil) else {
                    throw ValidationError("cannot create \(output)")
                }
                handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
            } else {
                handle = FileHandle.standardOutput
            }
            var buffer = Data()
            try await opened.exportJSONLines(progress: progress.update) { line in
                buffer.append(line)
                if buffer.count > 1 << 20 {
                    handle.write(buffer)
                    buffer.removeAll(keepingCapacity: true)
                }
            }
            handle.write(buffer)
            progress.finish()
            if output != nil { try handle.close() }
            await opened.close()
        }
    }

    /// `import`: raw SandboxFusion exchanges or an export.
    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import raw SandboxFusion exchanges (samples/*.json, exchanges.jsonl) or an export.")

        @Argument(help: "The cassette to write (created if missing).")
        var cassette: String

        @Argument(help: "Files or folders to import.")
        var inputs: [String]

        @Option(help: "exchanges, export, or auto (by content).")
        var format: String = "auto"

        func validate() throws {
            guard ["auto", "exchanges", "export"].contains(format) else {
                throw ValidationError("--format must be auto, exchanges or export")
            }
        }

        func run() async throws {
            let opened = try await Cassette.open(at: URL(fileURLWithPath: cassette))
            var exchanges: [URL] = []
            for input in inputs {
                let url = URL(fileURLWithPath: input)
                if format == "export" || (format == "auto" && Self.looksLikeExport(url)) {
                    let data = try Data(contentsOf: url)
                    let progress = ProgressBar(label: "import")
                    let count = try await opened.importJSONLines(data, progress: progress.update)
                    progress.finish()
                    FileHandle.standardError.write(Data("\(input): imported \(count) interaction(s)\n".utf8))
                } else {
                    exchanges.append(url)
                }
            }
            if !exchanges.isEmpty {
                let report = try await opened.importExchanges(from: exchanges)
                var text = "imported \(report.results) result(s) and \(report.errors) recorded error(s)"
                text += report.skipped.isEmpty ? "\n" : "; skipped \(report.skipped.count):\n"
                for reason in report.skipped { text += "  \(reason)\n" }
                FileHandle.standardError.write(Data(text.utf8))
                if report.imported == 0, !report.skipped.isEmpty {
                    await opened.close()
                    FileHandle.standardError.write(
                        Data(
                            ("nothing was imported: every exchange was skipped (see above); pass SandboxFusion "
                                + "exchanges (samples/*.json, exchanges.jsonl) or a cassette export\n").utf8))
                    throw ExitCode.failure
                }
            }
            await opened.close()
        }

        static func looksLikeExport(_ url: URL) -> Bool {
            guard url.pathExtension == "jsonl", let handle = FileHandle(forReadingAtPath: url.path) else {
                return false
            }
            defer { try? handle.close() }
            let head = (try? handle.read(upToCount: 4096)) ?? Data()
            let line = head.split(separator: UInt8(ascii: "\n")).first ?? Data()[...]
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                return false
            }
            return object["key"] != nil && object["ordinal"] != nil
        }
    }

    /// `merge`: several cassettes into one.
    struct Merge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Merge cassettes (e.g. shards recorded on many machines) into one.")

        @Option(name: .shortAndLong, help: "The cassette to merge into (created if missing).")
        var output: String

        @Argument(help: "Cassettes to merge.")
        var inputs: [String]

        func run() async throws {
            let destination = try await Cassette.open(at: URL(fileURLWithPath: output))
            var sources: [Cassette] = []
            for input in inputs {
                sources.append(try await Cassette.open(at: URL(fileURLWithPath: input), readOnly: true, create: false))
            }
            let progress = ProgressBar(label: "merge")
            let report = try await destination.merge(sources, progress: progress.update)
            progress.finish()
            for source in sources { await source.close() }
            await destination.close()
            FileHandle.standardError.write(
                Data("merged \(report.added) interaction(s); \(report.skipped) already present\n".utf8))
        }
    }

    /// `prune`: drop recordings not used recently or never replayed.
    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete recordings not used since a date, or not used by any run since replays were stamped.",
            discussion: """
                Replays leave cassettes unchanged unless SANDBOX_VCR_STAMP_REPLAYS=1 (so committed cassettes stay \
                clean). To remove what your tests no longer use: run them once with SANDBOX_VCR_STAMP_REPLAYS=1, \
                then `prune --never-replayed`.
                """)

        @Argument(help: "The cassette file.")
        var cassette: String

        @Option(
            help: "Delete recordings not replayed (or recorded) since this date: 2026-01-31, an ISO 8601 time, or 30d.")
        var unusedSince: String?

        @Flag(
            help: """
                Delete recordings no run used (replayed or recorded) since replays were first stamped \
                (SANDBOX_VCR_STAMP_REPLAYS=1); refused when no replay was ever stamped.
                """)
        var neverReplayed = false

        func validate() throws {
            guard unusedSince != nil || neverReplayed else {
                throw ValidationError("give --unused-since DATE or --never-replayed")
            }
            if let unusedSince, Self.date(unusedSince) == nil {
                throw ValidationError("--unused-since: \"\(unusedSince)\" is not a date (2026-01-31, ISO 8601, or 30d)")
            }
        }

        static func date(_ text: String) -> Date? {
            if text.hasSuffix("d"), let days = Double(text.dropLast()) {
                return Date(timeIntervalSinceNow: -days * 86_400)
            }
            if let date = ISO8601DateFormatter().date(from: text) { return date }
            let day = ISO8601DateFormatter()
            day.formatOptions = [.withFullDate]
            return day.date(from: text)
        }

        func run() async throws {
            let opened = try await Cassette.open(at: URL(fileURLWithPath: cassette), create: false)
            let deleted = try await opened.prune(
                unusedSince: unusedSince.flatMap(Self.date), neverReplayed: neverReplayed)
            let left = try await opened.count()
            await opened.close()
            print("deleted \(deleted) interaction(s); \(left) left")
        }
    }

    /// `migrate`: brings cassettes written by an older sandbox-vcr to the current schema.
    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Migrate cassettes to the current schema (a read-only replay cannot migrate them itself).",
            discussion: """
                Opening a cassette writable migrates it; replays that open it read-only (serve --record never) \
                refuse an older schema instead. Commit the migrated files.
                """)

        @Argument(help: "Cassette files.")
        var cassettes: [String]

        func run() async throws {
            for path in cassettes {
                let opened = try await Cassette.open(at: URL(fileURLWithPath: path), create: false)
                let count = try await opened.count()
                await opened.close()
                print("\(path): schema \(Cassette.schemaVersion), \(count) interaction(s)")
            }
        }
    }

    /// `verify`: integrity check and blob re-hash.
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check integrity (PRAGMA integrity_check), re-hash every blob and decode every interaction.")

        @Argument(help: "Cassette files.")
        var cassettes: [String]

        func run() async throws {
            var failed = false
            for path in cassettes {
                do {
                    let opened = try await Cassette.open(at: URL(fileURLWithPath: path), readOnly: true, create: false)
                    let progress = ProgressBar(label: "verify")
                    let report = try await opened.verify(progress: progress.update)
                    progress.finish()
                    await opened.close()
                    if report.isOK {
                        print("\(path): ok (\(report.checkedInteractions) interactions, \(report.checkedBlobs) blobs)")
                    } else {
                        failed = true
                        print("\(path): DAMAGED")
                        for line in report.integrity where line != "ok" { print("  integrity: \(line)") }
                        for blob in report.damagedBlobs { print("  blob \(blob) does not match its hash") }
                        for id in report.unreadableInteractions { print("  interaction \(id) cannot be read") }
                    }
                } catch let error as CassetteError {
                    failed = true
                    print("\(path): \(error.code): \(error.message)")
                }
            }
            if failed { throw ExitCode.failure }
        }
    }
}

/// A one-line progress bar on standard error, shown only when it is a terminal.
final class ProgressBar: Sendable {
    let label: String
    let isEnabled: Bool

    init(label: String) {
        self.label = label
        isEnabled = isatty(STDERR_FILENO) != 0
    }

    @Sendable func update(_ done: Int, _ total: Int) {
        guard isEnabled, total > 0 else { return }
        let width = 30
        let filled = min(width, done * width / total)
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(done)/\(total)".utf8))
    }

    func finish() {
        guard isEnabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
