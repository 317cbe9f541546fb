import Foundation
import SandboxVCR
import SandboxVCRTestSupport
import SandboxVCRTesting
import Testing

@testable import SandboxVCRServer

/// The server's answers compared with the real SandboxFusion server's recorded answers.
@Suite("Answers match the real server's samples")
struct SampleComparisonTests {
    /// Samples whose request the real server refused (422, 405): the same status, the same JSON, the same length.
    @Test(arguments: ["12", "13", "14", "22", "24", "25", "26", "27"])
    func refusedRequestsMatch(prefix: String) async throws {
        let sample = try Sample(prefix)
        let executor = makeEchoExecutor()
        let response = try await withServer(executor: executor) { server in
            try await server.exchange(sample.rawRequest)
        }
        #expect(response.status == sample.status, "\(sample.name)")
        #expect(try parseJSON(response.body) == sample.response, "\(sample.name): \(response.bodyText)")
        if let length = sample.responseLength {
            #expect(response.body.count == length, "\(sample.name): byte length differs: \(response.bodyText)")
        }
        #expect(response.header("content-type") == "application/json")
        #expect(executor.requests.isEmpty, "a refused request must not reach the executor")
    }

    @Test func methodNotAllowedNamesTheAllowedMethod() async throws {
        let response = try await withServer(executor: makeEchoExecutor()) { server in
            try await server.exchange(try Sample("25").rawRequest)
        }
        #expect(response.status == 405)
        #expect(response.header("allow") == "POST")
    }

    @Test func pingMatches() async throws {
        let sample = try Sample("00")
        let response = try await withServer(executor: makeEchoExecutor()) { server in
            try await server.exchange(sample.rawRequest)
        }
        #expect(response.status == 200)
        #expect(response.bodyText == #""pong""#)
        #expect(try parseJSON(response.body) == sample.response)
    }

    @Test func unknownPathIsNotFound() async throws {
        let response = try await withServer(executor: makeEchoExecutor()) { server in
            try await server.exchange(RawHTTP.request(method: "GET", path: "/nope"))
        }
        #expect(response.status == 404)
        #expect(response.bodyText == #"{"detail":"Not Found"}"#)
    }

    /// Every `/run_code` sample the real server answered with 200, replayed by an executor returning the recorded
    /// result: the server must send the recorded answer back (the request reaches the executor decoded).
    @Test(arguments: [
        "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "16", "19", "20", "21", "23", "28",
        "29", "30", "31", "32", "33", "37", "38", "39", "41", "42", "43", "44", "45",
    ])
    func acceptedRequestsReplayTheRecordedAnswer(prefix: String) async throws {
        let sample = try Sample(prefix)
        guard sample.status == 200, sample.path == "/run_code" else { return }
        let executor = FakeExecutor(default: .result(try sample.result()))
        let response = try await withServer(executor: executor) { server in
            try await server.exchange(sample.rawRequest)
        }
        #expect(response.status == 200)
        let answer = try parseJSON(response.body)
        if prefix == "19" {
            // Invalid base64 never reaches the executor: the server answers the SandboxError itself.
            #expect(answer["status"] == "SandboxError")
            #expect(answer["message"]?.stringValue?.hasPrefix("exception on running code print(1): ") == true)
        } else {
            #expect(answer == sample.response, "\(sample.name): \(response.bodyText.prefix(600))")
        }
    }

    @Test func extraFieldIsIgnoredAndRequestDecoded() async throws {
        let executor = makeEchoExecutor()
        _ = try await withServer(executor: executor) { server in
            try await server.exchange(try Sample("23").rawRequest)
        }
        let request = try #require(executor.requests.first)
        #expect(request.program == .source(language: .python, code: "print(1)"))
        #expect(request.runTimeout == .seconds(10))
    }

    /// Python's `base64.b64decode` skips line breaks and other characters outside the alphabet.
    @Test func base64FilesWithLineBreaksAreDecodedLikePython() async throws {
        let executor = makeEchoExecutor()
        let response = try await withServer(executor: executor) { server in
            try await server.postJSON(
                "/run_code", #"{"code": "x", "language": "python", "files": {"a.txt": "aGVs\nbG8=\n", "b": null}}"#)
        }
        #expect(response.status == 200)
        #expect(executor.requests.first?.files == ["a.txt": Data("hello".utf8)])
    }

    @Test func sqlIsAcceptedAndReachesTheExecutor() async throws {
        let executor = makeEchoExecutor()
        _ = try await withServer(executor: executor) { server in
            try await server.exchange(try Sample("41").rawRequest)
        }
        #expect(executor.requests.first?.program == .source(language: .sql, code: "select 1;"))
    }
}
