import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import SandboxVCRTesting
import Testing

@testable import SandboxVCRServer

/// Starts a `serve --control` server in this process over `live`, runs `body`, then shuts it down.
private func withControlServer<T: Sendable>(
    live: (any SandboxExecutor)?, _ body: (RunningServer, CassetteControl) async throws -> T
) async throws -> T {
    var configuration = ServeConfiguration()
    configuration.port = 0
    let control = CassetteControl(live: live)
    let server = SandboxFusionServer(control: control, configuration: configuration)
    return try await withRunning(server, onShutdown: { await control.shutdown() }) { try await body($0, control) }
}

extension RunningServer {
    fileprivate func control(
        _ method: String, _ path: String = "/sandbox-vcr/cassette", body: String? = nil,
        contentType: String? = "application/json"
    ) async throws -> (status: Int, json: JSONValue) {
        let headers = contentType.map { [("Content-Type", $0)] } ?? []
        let response = try await exchange(
            RawHTTP.request(method: method, path: path, headers: headers, body: body.map { Array($0.utf8) }))
        return (response.status, try parseJSON(response.body))
    }

    fileprivate func activate(_ path: String, mode: String, test: String = "t") async throws -> (Int, JSONValue) {
        try await control("POST", body: #"{"path": "\#(path)", "mode": "\#(mode)", "test": "\#(test)"}"#)
    }

    fileprivate func runCode(_ code: String) async throws -> JSONValue {
        let response = try await postJSON("/run_code", #"{"code": "\#(code)", "language": "python"}"#)
        #expect(response.status == 200)
        return try parseJSON(response.body)
    }
}

private func integer(_ value: JSONValue?) -> Int? {
    if case .integer(let digits)? = value { return Int(digits) }
    return nil
}

/// The file names in `folder` and the SHA-256 of each file's bytes.
private func snapshot(_ folder: URL) throws -> [String: String] {
    var result: [String: String] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
        result[name] = ContentHash.sha256(Array(try Data(contentsOf: folder.appendingPathComponent(name)))).hex
    }
    return result
}

@Suite("serve --control: the cassette per test")
struct CassetteControlTests {
    @Test func refusesHostileControlRequestsWithTypedErrors() async throws {
        let folder = try makeTemporaryFolder("control-hostile")
        defer { try? FileManager.default.removeItem(at: folder) }
        let notACassette = folder.appendingPathComponent("notes.sqlite")
        try Data("not a database, just text\n".utf8).write(to: notACassette)
        let good = folder.appendingPathComponent("good.sqlite").path

        try await withControlServer(live: nil) { server, _ in
            let cases: [(body: String, status: Int, code: String, says: String)] = [
                ("", 400, "invalidRequest", "must be a JSON object"),
                ("[1, 2]", 400, "invalidRequest", "must be a JSON object"),
                (#"{"path": "#, 400, "invalidRequest", "must be a JSON object"),
                (#"{"mode": "never"}"#, 400, "invalidRequest", #""path" is missing"#),
                (#"{"path": "\#(good)"}"#, 400, "invalidRequest", #""mode" is missing"#),
                (#"{"path": 7, "mode": "never"}"#, 400, "invalidRequest", #""path" must be a string"#),
                (#"{"path": "\#(good)", "mode": "never", "extra": 1}"#, 400, "invalidRequest", "unknown field"),
                (#"{"path": "\#(good)", "mode": "sometimes"}"#, 422, "invalidMode", "is not a record mode"),
                (#"{"path": "\#(good)", "mode": "NEVER"}"#, 422, "invalidMode", "is not a record mode"),
                (#"{"path": "relative/x.sqlite", "mode": "never"}"#, 422, "invalidPath", "is not absolute"),
                (#"{"path": "/tmp/../etc/x.sqlite", "mode": "never"}"#, 422, "invalidPath", "is not normalized"),
                (#"{"path": "/tmp//x.sqlite", "mode": "never"}"#, 422, "invalidPath", "is not normalized"),
                (#"{"path": "/etc/passwd", "mode": "missing"}"#, 422, "invalidPath", "does not name a .sqlite file"),
                (#"{"path": "/tmp/.sqlite", "mode": "missing"}"#, 422, "invalidPath", "does not name a .sqlite file"),
                (#"{"path": "/tmp/a\u0000b.sqlite", "mode": "never"}"#, 422, "invalidPath", "NUL"),
                (#"{"path": "/tmp/a\nb.sqlite", "mode": "never"}"#, 422, "invalidPath", "control character"),
                (
                    #"{"path": "/\#(String(repeating: "a", count: 5000)).sqlite", "mode": "never"}"#, 422,
                    "invalidPath", "longer than 4096 bytes"
                ),
                (#"{"path": "\#(good)", "mode": "all"}"#, 409, "noLiveBackend", "has none"),
                (#"{"path": "\#(good)", "mode": "live"}"#, 409, "noLiveBackend", "has none"),
                (#"{"path": "\#(notACassette.path)", "mode": "never"}"#, 422, "cassette", "not a SQLite database"),
            ]
            for item in cases {
                let (status, json) = try await server.control("POST", body: item.body)
                #expect(status == item.status, "\(item.body.prefix(80)): \(json)")
                #expect(json["error"]?.stringValue == item.code, "\(item.body.prefix(80)): \(json)")
                #expect(json["detail"]?.stringValue?.contains(item.says) == true, "\(item.body.prefix(80)): \(json)")
            }

            // A form post (what a web page can send cross-site without a preflight) is refused before it is read.
            let form = try await server.control(
                "POST", body: #"{"path": "\#(good)", "mode": "missing"}"#, contentType: "text/plain")
            #expect(form.status == 415)
            #expect(form.json["error"]?.stringValue == "unsupportedMediaType")
            let none = try await server.control("POST", body: "{}", contentType: nil)
            #expect(none.status == 415)

            let huge = try await server.control("POST", body: String(repeating: " ", count: 70_000) + "{}")
            #expect(huge.status == 413)
            #expect(huge.json["error"]?.stringValue == "bodyTooLarge")

            let unknown = try await server.control("GET", "/sandbox-vcr/nothing")
            #expect(unknown.status == 404)
            #expect(unknown.json["error"]?.stringValue == "notFound")
            let wrongMethod = try await server.control("PUT", "/sandbox-vcr/unused")
            #expect(wrongMethod.status == 405)
            #expect(wrongMethod.json["error"]?.stringValue == "methodNotAllowed")

            // Nothing was created, and no cassette became active.
            #expect(!FileManager.default.fileExists(atPath: good))
            #expect(try await server.control("GET").json["active"] == .null)
        }
    }

    @Test func withoutACassetteEveryRequestIsAMissThatSaysSo() async throws {
        try await withControlServer(live: makeEchoExecutor()) { server, _ in
            let answer = try await server.runCode("print(1)")
            #expect(answer["status"]?.stringValue == "SandboxError")
            #expect(answer["message"]?.stringValue?.contains("no cassette is active") == true)
            #expect(answer["message"]?.stringValue?.contains("POST /sandbox-vcr/cassette") == true)
            #expect(server.server.statistics.snapshot.misses == 1)
            #expect(try await server.control("DELETE").json["closed"] == .null)
        }
    }

    @Test func theControlPathsAreNotFoundWithoutControl() async throws {
        try await withServer(executor: makeEchoExecutor()) { server in
            let response = try await server.postJSON("/sandbox-vcr/cassette", #"{"path": "/tmp/x.sqlite"}"#)
            #expect(response.status == 404)
            #expect(response.bodyText == #"{"detail":"Not Found"}"#)
        }
    }

    @Test func recordsIntoAFileCreatedOnlyByARecordingThenReplaysWithoutWriting() async throws {
        let folder = try makeTemporaryFolder("control-record")
        defer { try? FileManager.default.removeItem(at: folder) }
        let cassette = folder.appendingPathComponent("tests/cassettes/test_a.sqlite")
        let live = makeEchoExecutor()

        try await withControlServer(live: live) { server, _ in
            // Recording mode, but no request: nothing is created.
            let (status, activated) = try await server.activate(cassette.path, mode: "missing", test: "t::a")
            #expect(status == 200, "\(activated)")
            #expect(activated["active"]?["test"]?.stringValue == "t::a")
            let empty = try await server.control("DELETE").json["closed"]
            #expect(integer(empty?["requests"]) == 0)
            #expect(!FileManager.default.fileExists(atPath: cassette.deletingLastPathComponent().path))

            // One request: recorded; the report names the recording by its id.
            _ = try await server.activate(cassette.path, mode: "missing", test: "t::a")
            #expect(try await server.runCode("print(1)")["status"]?.stringValue == "Success")
            let during = try await server.control("GET").json["active"]
            #expect(integer(during?["recorded"]) == 1)
            let recorded = try await server.control("DELETE").json["closed"]
            #expect(integer(recorded?["recorded"]) == 1)
            #expect(recorded?["used_recordings"] == [1])
            #expect(recorded?["cassette_exists"] == true)
            #expect(FileManager.default.fileExists(atPath: cassette.path))
        }
        #expect(live.requests.count == 1)

        // The closed file is complete and alone: no -wal or -shm beside it.
        let before = try snapshot(cassette.deletingLastPathComponent())
        #expect(before.keys.sorted() == ["test_a.sqlite"])
        try await withControlServer(live: nil) { server, _ in
            for mode in ["never", "missing"] {
                let (status, json) = try await server.activate(cassette.path, mode: mode, test: "t::a")
                #expect(status == 200, "\(json)")
                #expect(json["closed"] == .null)
                #expect(try await server.runCode("print(1)")["status"]?.stringValue == "Success")
                let miss = try await server.runCode("print(2)")
                #expect(miss["status"]?.stringValue == "SandboxError")
                let report = try await server.control("DELETE").json["closed"]
                #expect(integer(report?["hits"]) == 1, "\(mode)")
                #expect(integer(report?["misses"]) == 1, "\(mode)")
                #expect(report?["used_recordings"] == [1], "\(mode)")
                #expect(report?["miss_diagnostics"]?.pythonJSONText.contains("print(2)") == true, "\(mode)")
                // Byte for byte the same file, and nothing left beside it.
                #expect(try snapshot(cassette.deletingLastPathComponent()) == before, "\(mode)")
            }
        }
    }

    @Test func reportsTheRecordingsNoActivationUsedPerCassette() async throws {
        let folder = try makeTemporaryFolder("control-unused")
        defer { try? FileManager.default.removeItem(at: folder) }
        let shared = folder.appendingPathComponent("shared.sqlite").path
        let other = folder.appendingPathComponent("other.sqlite").path
        try await withControlServer(live: makeEchoExecutor()) { server, _ in
            _ = try await server.activate(shared, mode: "missing")
            for code in ["print(1)", "print(2)", "print(3)"] { _ = try await server.runCode(code) }
            _ = try await server.activate(other, mode: "missing")
            _ = try await server.runCode("print(4)")
            _ = try await server.control("DELETE")
        }
        try await withControlServer(live: nil) { server, _ in
            // Two tests share a cassette: together they use two of its three recordings. Switching closes the first.
            _ = try await server.activate(shared, mode: "never", test: "one")
            _ = try await server.runCode("print(1)")
            let (_, second) = try await server.activate(shared, mode: "never", test: "two")
            #expect(second["closed"]?["test"]?.stringValue == "one")
            _ = try await server.runCode("print(3)")
            _ = try await server.activate(other, mode: "never", test: "three")
            _ = try await server.runCode("print(4)")
            _ = try await server.control("DELETE")

            let (status, json) = try await server.control("GET", "/sandbox-vcr/unused")
            #expect(status == 200)
            guard case .array(let cassettes)? = json["cassettes"] else {
                Issue.record("no cassettes in \(json)")
                return
            }
            #expect(cassettes.map { $0["path"]?.stringValue } == [shared, other])
            #expect(integer(cassettes[0]["recordings"]) == 3)
            guard case .array(let unused)? = cassettes[0]["unused"] else {
                Issue.record("no unused list in \(json)")
                return
            }
            #expect(unused.count == 1)
            #expect(integer(unused.first?["id"]) == 2)
            #expect(unused.first?["request"]?.stringValue?.contains("print(2)") == true)
            #expect(cassettes[1]["unused"] == [])
        }
    }

    @Test func aPreparedCassetteAnswersOnlyOnceActivatedAndCountsNowhereUnlessUsed() async throws {
        let folder = try makeTemporaryFolder("control-prepare")
        defer { try? FileManager.default.removeItem(at: folder) }
        let first = folder.appendingPathComponent("first.sqlite").path
        let second = folder.appendingPathComponent("second.sqlite").path
        let never = folder.appendingPathComponent("never.sqlite").path
        try await withControlServer(live: makeEchoExecutor()) { server, _ in
            for (path, code) in [(first, "print(1)"), (second, "print(4)"), (never, "print(9)")] {
                _ = try await server.activate(path, mode: "missing")
                _ = try await server.runCode(code)
            }
            _ = try await server.control("DELETE")
        }
        func prepare(_ server: RunningServer, _ path: String, test: String) async throws -> (Int, JSONValue) {
            try await server.control(
                "POST", "/sandbox-vcr/next", body: #"{"path": "\#(path)", "mode": "never", "test": "\#(test)"}"#)
        }
        try await withControlServer(live: nil) { server, _ in
            let (status, prepared) = try await prepare(server, first, test: "one")
            #expect(status == 200, "\(prepared)")
            #expect(prepared["prepared"]?["test"]?.stringValue == "one")
            // Prepared is not current: a request meanwhile misses as with no cassette.
            let early = try await server.runCode("print(1)")
            #expect(early["message"]?.stringValue?.contains("no cassette is active") == true, "\(early)")
            _ = try await server.activate(first, mode: "never", test: "one")
            #expect(try await server.runCode("print(1)")["status"]?.stringValue == "Success")
            _ = try await server.control("DELETE")

            // Prepared for a test that does not come: another activation closes it, and no report names it.
            _ = try await prepare(server, never, test: "skipped")
            _ = try await server.activate(second, mode: "never", test: "two")
            #expect(try await server.runCode("print(4)")["status"]?.stringValue == "Success")
            _ = try await server.control("DELETE")

            // The file changed after it was prepared (another cassette moved in): the activation opens it anew.
            _ = try await prepare(server, first, test: "three")
            let moved = folder.appendingPathComponent("moved.sqlite").path
            try FileManager.default.copyItem(atPath: second, toPath: moved)
            #expect(rename(moved, first) == 0)
            _ = try await server.activate(first, mode: "never", test: "three")
            #expect(try await server.runCode("print(4)")["status"]?.stringValue == "Success")
            #expect(try await server.runCode("print(1)")["status"]?.stringValue == "SandboxError")
            _ = try await server.control("DELETE")

            let unused = try await server.control("GET", "/sandbox-vcr/unused").json
            guard case .array(let cassettes)? = unused["cassettes"] else {
                Issue.record("no cassettes in \(unused)")
                return
            }
            #expect(cassettes.map { $0["path"]?.stringValue } == [first, second])

            let (refused, answer) = try await server.control("POST", "/sandbox-vcr/next", body: #"{"path": 1}"#)
            #expect(refused == 400)
            #expect(answer["error"]?.stringValue == "invalidRequest")
        }
    }
}
