import Foundation
import SandboxVCR

/// Renders results for people (text) and for programs (JSON with sorted keys, text fields as text).
enum ResultPrinter {
    /// The result for people: status, each step's outcome and output, fetched files, hints.
    static func text(_ result: ExecutionResult) -> String {
        var lines = ["status: \(result.status)  (backend: \(result.backend))"]
        if !result.message.isEmpty { lines.append("message: \(result.message)") }
        for (name, step) in [("compile", result.compile), ("run", result.run)] {
            guard let step else { continue }
            var line = "\(name): \(step.status)"
            if let code = step.exitCode { line += ", exit code \(code)" }
            if let signal = step.signal { line += ", killed by signal \(signal)" }
            if let wall = step.wallTime { line += String(format: ", %.3f s", wall) }
            lines.append(line)
            if !step.stdout.isEmpty { lines.append(section("\(name) stdout", step.stdout)) }
            if !step.stderr.isEmpty { lines.append(section("\(name) stderr", step.stderr)) }
        }
        for (path, data) in result.files.sorted(by: { $0.key < $1.key }) {
            lines.append("fetched \(path): \(data.count) bytes")
        }
        for hint in result.hints.map(\.description).sorted() { lines.append("note: \(hint)") }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func section(_ title: String, _ data: Data) -> String {
        var text = String(decoding: data, as: UTF8.self)
        if text.hasSuffix("\n") { text.removeLast() }
        return "--- \(title) ---\n\(text)"
    }

    /// The result as JSON: bytes as text when valid UTF-8, else base64 under a `…Base64` key.
    static func json(_ result: ExecutionResult) -> String {
        var object: [String: Any] = [
            "status": result.status.rawValue,
            "message": result.message,
            "backend": result.backend.rawValue,
            "hints": result.hints.map(\.description).sorted(),
        ]
        if let name = result.executorName { object["executorName"] = name }
        if let compile = result.compile { object["compile"] = step(compile) }
        if let run = result.run { object["run"] = step(run) }
        var files: [String: Any] = [:]
        for (path, data) in result.files { files[path] = bytes(data) }
        object["files"] = files
        return serialize(object)
    }

    /// An error that left no result, as JSON: its text, and its code (and HTTP status or cassette) when known.
    static func json(error: any Error) -> String {
        var object: [String: Any] = ["error": "\(error)"]
        if let error = error as? ExecutionError {
            object["code"] = error.code.rawValue
            if let status = error.httpStatus { object["httpStatus"] = status }
        } else if let error = error as? CassetteError {
            object["code"] = error.code.rawValue
            object["cassette"] = error.path
        }
        return serialize(object)
    }

    private static func step(_ outcome: CommandOutcome) -> [String: Any] {
        var object: [String: Any] = ["status": outcome.status.rawValue]
        if let code = outcome.exitCode { object["exitCode"] = code }
        if let signal = outcome.signal { object["signal"] = signal }
        if let wall = outcome.wallTime { object["wallTime"] = wall }
        if let cpu = outcome.cpuTime { object["cpuTime"] = cpu }
        object["stdout"] = bytes(outcome.stdout)
        object["stderr"] = bytes(outcome.stderr)
        return object
    }

    private static func bytes(_ data: Data) -> Any {
        if let text = String(data: data, encoding: .utf8) { return text }
        return ["base64": data.base64EncodedString()]
    }

    private static func serialize(_ object: [String: Any]) -> String {
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
