internal import Foundation

/// Explains a replay miss: the request, the nearest recordings and how each differs, field by field.
package enum MissDiagnostics {
    /// The differences between a recorded request and the requested one, one line (or diff) per field.
    package static func differences(recorded: ExecutionRequest, requested: ExecutionRequest) -> [String] {
        var lines: [String] = []
        switch (recorded.program, requested.program) {
        case (.source(let oldLanguage, let oldCode), .source(let newLanguage, let newCode)):
            if oldLanguage != newLanguage {
                lines.append("language: recorded \(oldLanguage), requested \(newLanguage)")
            }
            if let diff = LineDiff.unified(from: oldCode, to: newCode) { lines.append("code differs:\n" + diff) }
        case (.command(let oldArgv, let oldDir), .command(let newArgv, let newDir)):
            if oldArgv != newArgv {
                lines.append(
                    "argv: recorded \(oldArgv.joined(separator: " ")), requested \(newArgv.joined(separator: " "))")
            }
            if oldDir != newDir { lines.append("workdir: recorded \(oldDir ?? "-"), requested \(newDir ?? "-")") }
        default:
            lines.append("program: recorded \(recorded.summary), requested \(requested.summary)")
        }
        let paths = Set(recorded.files.keys).union(requested.files.keys).sorted(by: RecordCoding.utf8Order)
        for path in paths {
            switch (recorded.files[path], requested.files[path]) {
            case (nil, .some(let data)): lines.append("file \(path): only in the request (\(data.count) bytes)")
            case (.some(let data), nil): lines.append("file \(path): only in the recording (\(data.count) bytes)")
            case (.some(let old), .some(let new)) where old != new:
                var line = "file \(path) differs (recorded \(old.count) bytes, requested \(new.count) bytes)"
                if let oldText = String(data: old, encoding: .utf8), let newText = String(data: new, encoding: .utf8),
                    let diff = LineDiff.unified(from: oldText, to: newText)
                {
                    line += ":\n" + diff
                }
                lines.append(line)
            default: break
            }
        }
        if recorded.stdin != requested.stdin {
            lines.append(
                "stdin: recorded \(quoted(recorded.stdin)), requested \(quoted(requested.stdin))")
        }
        if recorded.runTimeout.inSeconds != requested.runTimeout.inSeconds {
            lines.append(
                "run timeout: recorded \(recorded.runTimeout.formattedSeconds), requested "
                    + requested.runTimeout.formattedSeconds)
        }
        if recorded.compileTimeout.inSeconds != requested.compileTimeout.inSeconds {
            lines.append(
                "compile timeout: recorded \(recorded.compileTimeout.formattedSeconds), requested "
                    + requested.compileTimeout.formattedSeconds)
        }
        if recorded.memoryLimitMB != requested.memoryLimitMB {
            lines.append(
                "memory limit: recorded \(recorded.memoryLimitMB.map { "\($0) MB" } ?? "none"), requested "
                    + (requested.memoryLimitMB.map { "\($0) MB" } ?? "none"))
        }
        if recorded.fetchFiles != requested.fetchFiles {
            lines.append(
                "fetch files: recorded \(recorded.fetchFiles.sorted()), requested \(requested.fetchFiles.sorted())")
        }
        return lines
    }

    private static func quoted(_ data: Data) -> String {
        let text = String(decoding: data.prefix(60), as: UTF8.self).replacingOccurrences(of: "\n", with: "\\n")
        return "\"\(text)\"" + (data.count > 60 ? "... (\(data.count) bytes)" : "")
    }

    /// The (at most 3) candidates closest to `request`, closest first, with their differences.
    static func nearest(
        _ candidates: [Cassette.Interaction], to request: ExecutionRequest
    ) -> [(Cassette.Interaction, [String])] {
        let ranked = candidates.map { ($0, differences(recorded: $0.request, requested: request)) }
            .sorted { lhs, rhs in
                let left = lhs.1.count * 1000 + lhs.1.joined().count
                let right = rhs.1.count * 1000 + rhs.1.joined().count
                return left < right
            }
        return Array(ranked.prefix(3))
    }

    /// The whole miss message.
    ///
    /// - Parameter ranked: the nearest recordings with their differences, from ``nearest(_:to:)``.
    static func message(
        request: ExecutionRequest, mode: RecordMode, path: String,
        ranked: [(Cassette.Interaction, [String])], recordingCount: Int
    ) -> String {
        var text = "No recording matches this request in cassette \(path) (record mode `\(mode)`).\n"
        text += "Request: \(request.summary)\n"
        if ranked.isEmpty {
            text += "The cassette has no recordings (\(recordingCount)).\n"
        } else {
            text += "Nearest recorded request(s):\n"
            for (index, (interaction, diffs)) in ranked.enumerated() {
                text += "\(index + 1). \(interaction.request.summary), recorded \(interaction.recordedAt)\n"
                if diffs.isEmpty {
                    text += "   (same request under another matcher or session; check the RequestMatcher)\n"
                }
                for line in diffs {
                    text +=
                        line.split(separator: "\n", omittingEmptySubsequences: false)
                        .map { "   " + $0 }.joined(separator: "\n") + "\n"
                }
            }
        }
        let hint =
            "To record it, run with SANDBOX_VCR_RECORD=missing (or `--record missing`, or "
            + "`.cassette(..., record: .missing)`) and a live executor."
        return bounded(text, maximumBytes: maximumMessageBytes) + hint
    }

    /// The most bytes of a miss message before its last line: it goes into an answer and a log line.
    static let maximumMessageBytes = 16 * 1024

    /// `text` cut to about `maximumBytes` UTF-8 bytes (on a character boundary), saying how much was left out.
    static func bounded(_ text: String, maximumBytes: Int) -> String {
        let utf8 = text.utf8
        guard utf8.count > maximumBytes else { return text }
        let kept = text[..<utf8.index(utf8.startIndex, offsetBy: maximumBytes)]
        return kept + "\n… (\(utf8.count - kept.utf8.count) more bytes of diagnostics not shown)\n"
    }
}
