public import Foundation
public import SandboxVCR

/// A realistic grading request and its answer, at one of the sizes the payload benchmarks measure.
///
/// The code is a candidate solution followed by a Python test harness (functions, asserts, quoted strings,
/// backslashes, non-ASCII text), so that JSON escaping is exercised. Bodies are built as the real peers send them:
/// a request as Python's `json.dumps` writes it (the `requests` and `aiohttp` clients of RL stacks: ASCII only,
/// `\uXXXX` escapes, `", "` and `": "` separators), an answer as SandboxFusion (FastAPI) writes it (compact, UTF-8).
///
/// Every stdin ends with a variant line, `run 00000000`, whose digits ``stamp(_:into:at:)`` overwrites in place, so
/// that a load driver can make each request distinct without building a new body.
public struct Payload: Sendable {
    /// The payload sizes.
    public enum Size: String, CaseIterable, Sendable {
        /// `print(1)`: a ~100 B request, 2 B of stdout.
        case tiny
        /// A 20 KB harness, a 1 KB solution and ~1 KB of stdin (a ~23 KB request); 1 KB of stdout.
        case harness
        /// The harness request plus a `files` entry of ~1 MB of base64 (a ~1 MB request); 1 KB of stdout.
        case file
        /// The harness request (~23 KB); 5 MB of stdout.
        case largeAnswer

        /// The request and the answer's stdout, as benchmark tags.
        public var tags: [String: String] {
            switch self {
            case .tiny: ["request": "100B", "stdout": "2B"]
            case .harness: ["request": "23KB", "stdout": "1KB"]
            case .file: ["request": "1MB", "stdout": "1KB"]
            case .largeAnswer: ["request": "23KB", "stdout": "5MB"]
            }
        }
    }

    /// The size this payload was built at.
    public let size: Size
    /// The program: the solution, then the harness (empty for ``Size/tiny``).
    public let code: String
    /// The stdin, ending with the variant line.
    public let stdin: String
    /// Test data files by path (raw bytes; base64 on the wire).
    public let files: [String: Data]
    /// The stdout of the answer.
    public let stdout: String

    /// The variant line every stdin ends with; its eight digits are overwritten by ``stamp(_:into:at:)``.
    public static let variantLine = "run 00000000\n"

    /// Builds the payload of `size`.
    /// - Parameters:
    ///   - problem: chooses the harness and the test data (a grading run has many problems).
    ///   - candidate: chooses the solution (each problem has many candidates).
    ///   - variant: written into the stdin's variant line.
    public init(_ size: Size, problem: Int = 0, candidate: Int = 0, variant: Int = 0) {
        self.size = size
        let variantLine = "run \(Self.eightDigits(variant))\n"
        switch size {
        case .tiny:
            code = "print(1)"
            stdin = variantLine
            stdout = "1\n"
        case .harness, .file, .largeAnswer:
            code = PayloadText.solution(candidate: candidate) + "\n\n" + PayloadText.harness(problem: problem)
            stdin = PayloadText.stdin(problem: problem) + variantLine
            stdout = size == .largeAnswer ? PayloadText.stdout(bytes: 5 << 20) : PayloadText.stdout(bytes: 1 << 10)
        }
        files =
            size == .file ? ["data/tests-\(problem).bin": PayloadText.testData(seed: problem, bytes: 768 << 10)] : [:]
    }

    /// The request as the Swift client takes it.
    public var request: ExecutionRequest {
        ExecutionRequest(
            code: code, language: .python, files: files, stdin: stdin, runTimeout: .seconds(10),
            compileTimeout: .seconds(10))
    }

    /// The `/run_code` body, as a Python client sends it.
    public var requestBody: [UInt8] {
        var json = PythonStyleJSON(style: .pythonDumps)
        writeRequest(to: &json)
        return json.bytes
    }

    /// SandboxFusion's answer: success, the program finished with exit code 0 and printed ``stdout``.
    public var answerBody: [UInt8] {
        var json = PythonStyleJSON(style: .fastAPI)
        writeAnswer(to: &json)
        return json.bytes
    }

    /// One line of an `exchanges.jsonl` file (`cassette import`'s raw format), newline included: as a Python
    /// capture script writes it with `json.dumps`.
    public var exchangeLine: [UInt8] {
        var json = PythonStyleJSON(style: .pythonDumps)
        json.beginObject()
        json.key("request")
        json.beginObject()
        json.field("method", "POST")
        json.field("path", "/run_code")
        json.key("body")
        writeRequest(to: &json)
        json.endObject()
        json.key("http_status")
        json.raw("200")
        json.key("response")
        writeAnswer(to: &json)
        json.key("client_elapsed_s")
        json.raw("0.052")
        json.endObject()
        json.raw("\n")
        return json.bytes
    }

    /// Overwrites the eight digits of the variant line at `offset` (from ``variantOffset(in:)``) with `variant`.
    public static func stamp(_ variant: Int, into bytes: inout [UInt8], at offset: Int) {
        var value = variant
        for index in stride(from: offset + 7, through: offset, by: -1) {
            bytes[index] = UInt8(ascii: "0") + UInt8(value % 10)
            value /= 10
        }
    }

    /// The offset of the variant line's digits in `bytes` (a body, or a whole HTTP request), or `nil`.
    public static func variantOffset(in bytes: [UInt8]) -> Int? {
        // `run 00000000` then the JSON escape of its newline.
        let pattern = Array("run 00000000\\n".utf8)
        guard bytes.count >= pattern.count else { return nil }
        for start in stride(from: bytes.count - pattern.count, through: 0, by: -1)
        where bytes[start] == pattern[0] && bytes[start..<(start + pattern.count)].elementsEqual(pattern) {
            return start + 4
        }
        return nil
    }

    private static func eightDigits(_ value: Int) -> String {
        let digits = String(value % 100_000_000)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    private func writeRequest(to json: inout PythonStyleJSON) {
        json.beginObject()
        json.field("code", code)
        json.field("language", "python")
        json.field("stdin", stdin)
        json.key("run_timeout")
        json.raw("10")
        json.key("compile_timeout")
        json.raw("10")
        json.key("files")
        json.beginObject()
        for (path, data) in files.sorted(by: { $0.key < $1.key }) {
            json.field(path, data.base64EncodedString())
        }
        json.endObject()
        json.endObject()
    }

    private func writeAnswer(to json: inout PythonStyleJSON) {
        json.beginObject()
        json.field("status", "Success")
        json.field("message", "")
        json.key("compile_result")
        json.raw("null")
        json.key("run_result")
        json.beginObject()
        json.field("status", "Finished")
        json.key("execution_time")
        json.raw(size == .largeAnswer ? "1.8342790603637695" : "0.04135298728942871")
        json.key("return_code")
        json.raw("0")
        json.field("stdout", stdout)
        json.field("stderr", "")
        json.endObject()
        json.key("executor_pod_name")
        json.raw("null")
        json.key("files")
        json.beginObject()
        json.endObject()
        json.endObject()
    }
}
