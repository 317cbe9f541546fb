import Foundation
import ModalProto
import SandboxVCR
import SwiftProtobuf
import Synchronization
import Testing

@testable import SandboxVCRModal

@Suite("Modal: TOML profiles")
struct ModalTOMLTests {
    @Test("sections, strings, booleans, comments and numbers")
    func parsesProfiles() throws {
        let text = """
            # a comment
            top = "level"
            [default]
            token_id = "ak-1"   # trailing comment
            token_secret = 'as-#not-a-comment'
            active = true
            [other]
            token_id = "ak-\\"quoted\\""
            active = false
            port = 8080
            rate = 2.5
            [other.nested]
            skipped = "a nested table is not a profile value"
            """
        let sections = try ModalTOML.parse(text)
        #expect(sections[""]?["top"] == .string("level"))
        #expect(sections["default"]?["token_id"] == .string("ak-1"))
        #expect(sections["default"]?["token_secret"] == .string("as-#not-a-comment"))
        #expect(sections["default"]?["active"] == .bool(true))
        #expect(sections["other"]?["token_id"] == .string("ak-\"quoted\""))
        #expect(sections["other"]?["active"] == .bool(false))
        #expect(sections["other"]?["port"] == .other("8080"))
        #expect(sections["other"]?["rate"] == .other("2.5"))
        #expect(sections["other"]?["nested"] == nil)
        #expect(Set(sections.keys) == ["", "default", "other"])
    }

    @Test("the whole TOML grammar: quoted table names, multi-line and escaped strings, inline tables")
    func parsesFullGrammar() throws {
        let text = #"""
            ["my profile"]
            token_id = """
            ak-multi"""
            token_secret = "as-\u0041"
            environment = 'C:\not\an\escape'
            [inline]
            token_id = "ak-inline"
            extra = { a = 1 }
            """#
        let sections = try ModalTOML.parse(text + "\nwhen = 1979-05-27T07:32:00Z\nnote = \"[*] 1979-05-27Tx\"\n")
        #expect(sections["inline"]?["note"] == .string("[*] 1979-05-27Tx"))
        #expect(sections["my profile"]?["token_id"] == .string("ak-multi"))
        #expect(sections["my profile"]?["token_secret"] == .string("as-A"))
        #expect(sections["my profile"]?["environment"] == .string(#"C:\not\an\escape"#))
        #expect(sections["inline"]?["token_id"] == .string("ak-inline"))
        #expect(sections["inline"]?["extra"] == nil)
    }

    @Test(
        "malformed files name their line",
        arguments: [
            ("[a]\njust words\n", 2),
            ("[a\n", 1),
            ("k = \"open\n", 1),
            ("[a]\nk = 1\n[a]\n", 3),
            // Shapes on which toml++ would abort the process with a failed assert (Fixtures/fuzz/modal-toml).
            ("[*]\n", 1), ("[a]\n  [[ *]]\n", 2), ("[a.*]\n", 1), ("c = 1979-05-27Tx0:00\n", 1),
            ("[a]\nk = \"ok\"\nc = { d = 1979-05-27T:0:00 }\n", 3),
        ])
    func rejectsMalformed(text: String, line: Int) {
        let error = #expect(throws: ModalTOML.ParseError.self) { try ModalTOML.parse(text) }
        #expect(error?.line == line)
        #expect(error?.reason.isEmpty == false)
    }

    @Test("the parser's quoted fragments are redacted (they may be a token)")
    func redactsFragments() throws {
        #expect(ModalTOML.redacted("'123456' is not representable in 64 bits") == "'…' is not representable in 64 bits")
        #expect(ModalTOML.redacted("expected '=', saw 'x'") == "expected '=', saw 'x'")
        #expect(ModalTOML.redacted("unclosed 'as-secret") == "unclosed '…")
        let error = #expect(throws: ModalTOML.ParseError.self) {
            try ModalTOML.parse("[a]\ntoken_secret = 123456789012345678901234567890\n")
        }
        #expect(error?.line == 2)
        #expect(error?.description.contains("1234567890") == false)
    }
}

@Suite("Modal: configuration from the environment")
struct ModalConfigurationTests {
    let folder: URL

    init() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("modal-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    private func writeProfile(_ text: String) throws -> String {
        let url = folder.appendingPathComponent("modal.toml")
        try Data(text.utf8).write(to: url)
        return url.path
    }

    @Test("tokens from the environment; defaults for server, pool and rate")
    func fromEnvironmentOnly() throws {
        let configuration = try ModalConfiguration.fromEnvironment([
            "MODAL_TOKEN_ID": "ak-env", "MODAL_TOKEN_SECRET": "as-env-secret", "HOME": folder.path,
        ])
        #expect(configuration.tokenID == "ak-env")
        #expect(configuration.tokenSecret == "as-env-secret")
        #expect(configuration.serverURL == "https://api.modal.com")
        #expect(configuration.poolSize == 32)
        #expect(configuration.creationRateLimit == 4)
        #expect(configuration.environment == nil)
        #expect(!configuration.description.contains("as-env-secret"))
        #expect(!String(reflecting: configuration).contains("as-env-secret"))
        var dumped = ""
        dump(configuration, to: &dumped)
        #expect(dumped.contains("ak-env"))
        #expect(!dumped.contains("as-env-secret"))
    }

    @Test("the active profile of MODAL_CONFIG_PATH, overridden by env tokens and server URL")
    func fromProfile() throws {
        let path = try writeProfile(
            """
            [first]
            token_id = "ak-first"
            token_secret = "as-first"
            [second]
            token_id = "ak-second"
            token_secret = "as-second"
            environment = "staging"
            server_url = "http://127.0.0.1:1"
            active = true
            """)
        let active = try ModalConfiguration.fromEnvironment(["MODAL_CONFIG_PATH": path])
        #expect(active.tokenID == "ak-second")
        #expect(active.tokenSecret == "as-second")
        #expect(active.environment == "staging")
        #expect(active.serverURL == "http://127.0.0.1:1")
        #expect(active.profile == "second")

        let chosen = try ModalConfiguration.fromEnvironment([
            "MODAL_CONFIG_PATH": path, "MODAL_PROFILE": "first", "MODAL_ENVIRONMENT": "prod",
            "MODAL_SERVER_URL": "http://127.0.0.1:2", "MODAL_POOL_SIZE": "8", "MODAL_CREATION_RATE_LIMIT": "2.5",
        ])
        #expect(chosen.tokenID == "ak-first")
        #expect(chosen.environment == "prod")
        #expect(chosen.serverURL == "http://127.0.0.1:2")
        #expect(chosen.poolSize == 8)
        #expect(chosen.creationRateLimit == 2.5)

        let overridden = try ModalConfiguration.fromEnvironment([
            "MODAL_CONFIG_PATH": path, "MODAL_TOKEN_ID": "ak-env", "MODAL_TOKEN_SECRET": "as-env",
        ])
        #expect(overridden.tokenID == "ak-env")
        #expect(overridden.tokenSecret == "as-env")
    }

    @Test("~/.modal.toml under HOME is read")
    func fromHome() throws {
        try Data("[only]\ntoken_id = \"ak-home\"\ntoken_secret = \"as-home\"\n".utf8)
            .write(to: folder.appendingPathComponent(".modal.toml"))
        let configuration = try ModalConfiguration.fromEnvironment(["HOME": folder.path])
        #expect(configuration.tokenID == "ak-home")
    }

    @Test("missing credentials, unknown profile, bad numbers, malformed files: configuration errors saying what to do")
    func errors() throws {
        let missing = #expect(throws: ExecutionError.self) {
            try ModalConfiguration.fromEnvironment(["HOME": folder.path, "MODAL_TOKEN_ID": "ak-only"])
        }
        #expect(missing?.code == .configuration)
        #expect(missing?.message.contains("MODAL_TOKEN_SECRET") == true)
        #expect(missing?.message.contains("modal token new") == true)

        let path = try writeProfile("[a]\ntoken_id = \"ak\"\ntoken_secret = \"as-profile-secret\"\n")
        let unknown = #expect(throws: ExecutionError.self) {
            try ModalConfiguration.fromEnvironment(["MODAL_CONFIG_PATH": path, "MODAL_PROFILE": "b"])
        }
        #expect(unknown?.message.contains("\"b\"") == true)
        #expect(unknown?.message.contains("as-profile-secret") == false)

        let badPool = #expect(throws: ExecutionError.self) {
            try ModalConfiguration.fromEnvironment(["MODAL_CONFIG_PATH": path, "MODAL_POOL_SIZE": "zero"])
        }
        #expect(badPool?.code == .configuration)
        #expect(badPool?.message.contains("MODAL_POOL_SIZE") == true)

        let malformed = try writeProfile("[a]\ntoken_id = \"ak\"\ntoken_secret = \"as-unterminated-secret\n")
        let invalid = #expect(throws: ExecutionError.self) {
            try ModalConfiguration.fromEnvironment(["MODAL_CONFIG_PATH": malformed])
        }
        #expect(invalid?.code == .configuration)
        #expect(invalid?.message.contains(malformed) == true)
        #expect(invalid?.message.contains("line 3") == true)
        #expect(invalid?.message.contains("MODAL_CONFIG_PATH") == true)
        #expect(invalid?.message.contains("as-unterminated-secret") == false)

        let oversized = try writeProfile("[a]\ntoken_id = \"ak\"\ntoken_secret = 98765432109876543210987654321\n")
        let numeric = #expect(throws: ExecutionError.self) {
            try ModalConfiguration.fromEnvironment(["MODAL_CONFIG_PATH": oversized])
        }
        #expect(numeric?.message.contains(oversized) == true)
        #expect(numeric?.message.contains("9876543210") == false)
    }
}

@Suite("Modal: creation rate limiter")
struct CreationRateLimiterTests {
    @Test("bookings at one instant are spaced 1/rate apart")
    func spacesBurst() {
        var limiter = CreationRateLimiter(ratePerSecond: 4)
        let waits = (0..<5).map { _ in limiter.reserve(now: 10) }
        #expect(waits == [0, 0.25, 0.5, 0.75, 1.0])
    }

    @Test("tokens refill with time up to the burst")
    func refills() {
        var limiter = CreationRateLimiter(ratePerSecond: 2, burst: 2)
        #expect(limiter.reserve(now: 0) == 0)
        #expect(limiter.reserve(now: 0) == 0)
        #expect(limiter.reserve(now: 0) == 0.5)
        // Long quiet period: back to a full bucket of 2, not more.
        #expect(limiter.reserve(now: 100) == 0)
        #expect(limiter.reserve(now: 100) == 0)
        #expect(limiter.reserve(now: 100) == 0.5)
        // Half a second later one token came back, but two are owed: the next booking waits.
        #expect(limiter.reserve(now: 100.5) == 0.5)
    }
}

@Suite("Modal: gRPC framing, statuses and retry delays")
struct GRPCFramingTests {
    @Test("frames round-trip; an incomplete tail is reported")
    func framing() throws {
        let body = GRPCFraming.frame(Data("abc".utf8)) + GRPCFraming.frame(Data()) + GRPCFraming.frame(Data("xy".utf8))
        #expect(body.count == 5 + 3 + 5 + 5 + 2)
        let (messages, incomplete) = try GRPCFraming.messages(in: body + Data([0, 0, 0, 0, 9, 1]))
        #expect(messages == [Data("abc".utf8), Data(), Data("xy".utf8)])
        #expect(incomplete == 6)
        #expect(throws: GRPCStatusError.self) { try GRPCFraming.messages(in: Data([1, 0, 0, 0, 0])) }
    }

    @Test("the incremental decoder delivers whole messages across any split of the body")
    func incrementalDecoder() {
        let body =
            GRPCFraming.frame(Data("first".utf8)) + GRPCFraming.frame(Data()) + GRPCFraming.frame(Data(count: 300))
        for split in [1, 2, 4, 5, 6, 7, 13, body.count] {
            let received = Mutex<[Data]>([])
            let decoder = GRPCFrameDecoder { message in received.withLock { $0.append(message) } }
            var index = body.startIndex
            while index < body.endIndex {
                let end = min(body.endIndex, index + split)
                decoder.feed(body.subdata(in: index..<end))
                index = end
            }
            #expect(received.withLock { $0 } == [Data("first".utf8), Data(), Data(count: 300)], "split \(split)")
            #expect(decoder.pendingBytes == 0)
            #expect(decoder.failure == nil)
        }
    }

    @Test("grpc-message is percent-decoded; grpc-timeout is in milliseconds")
    func headers() {
        #expect(GRPCFraming.decodeMessage("sandbox%20not%20found%3A%20sb-1") == "sandbox not found: sb-1")
        #expect(GRPCFraming.decodeMessage("100%") == "100%")
        // A sign is no hex digit: such escapes are kept as they are.
        #expect(GRPCFraming.decodeMessage("%+1%-0%41%4") == "%+1%-0A%4")
        #expect(GRPCFraming.timeoutHeader(.seconds(1.5)) == "1500m")
    }

    @Test("statuses come from trailers or trailers-only headers, with the retry policy's wait")
    func statuses() throws {
        var policy = Modal_Client_RPCRetryPolicy()
        policy.retryAfterSecs = 0.25
        var status = Modal_Client_RPCStatus()
        status.code = 8
        status.message = "slow down"
        var detail = Google_Protobuf_Any()
        detail.typeURL = "type.modal.com/modal.client.RPCRetryPolicy"
        detail.value = try policy.serializedData()
        status.details = [detail]
        let details = try status.serializedData().base64EncodedString().replacingOccurrences(of: "=", with: "")
        let throttled = HTTPResponse(
            status: 200,
            headers: ["grpc-status": "8", "grpc-message": "slow%20down", "grpc-status-details-bin": details],
            httpVersion: .http2PriorKnowledge)
        let error = try #require(GRPCChannel.status(of: throttled, path: "/modal.client.ModalClient/AppGetOrCreate"))
        #expect(error.code == .resourceExhausted)
        #expect(error.message == "slow down")
        #expect(error.retryAfter == .milliseconds(250))
        #expect(error.description.contains("AppGetOrCreate failed with RESOURCE_EXHAUSTED"))

        let ok = HTTPResponse(status: 200, trailers: ["grpc-status": "0"], httpVersion: .http2PriorKnowledge)
        #expect(GRPCChannel.status(of: ok, path: "/x") == nil)
        let lost = try #require(GRPCChannel.status(of: HTTPResponse(status: 200), path: "/x"))
        #expect(lost.code == .unknown)
        #expect(lost.isRetryable)
    }

    @Test("error mapping: credentials, gone sandboxes, timeouts")
    func mapping() {
        let unauthenticated = GRPCStatusError(code: .unauthenticated, message: "bad token").executionError()
        #expect(unauthenticated.code == .configuration)
        #expect(unauthenticated.message.contains("MODAL_TOKEN_ID"))
        #expect(
            GRPCStatusError(code: .notFound, message: "").executionError(sandboxCall: true).code == .sandboxTerminated)
        #expect(GRPCStatusError(code: .notFound, message: "").executionError().code == .sandboxError)
        #expect(GRPCStatusError(code: .deadlineExceeded, message: "").executionError().code == .timedOut)
    }

    @Test("backoff doubles up to the cap")
    func backoff() {
        let policy = GRPCRetryPolicy.controlPlane
        #expect(
            (0..<5).map { policy.delay(beforeRetry: $0) } == [
                .milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1),
            ])
        #expect(GRPCRetryPolicy.router.maxRetries == 10)
        #expect(GRPCRetryPolicy.router.delay(beforeRetry: 0) == .milliseconds(10))
    }

    @Test("image layers follow the SDK's debian_slim and pip layers")
    func imageCommands() {
        let image = ModalImage.debianSlim(pipPackages: ["numpy", "pandas==2.2"])
        let base = image.baseCommands(builderVersion: "2025.06")
        #expect(base.first == "FROM python:3.11.12-slim-bookworm")
        #expect(base.count == 6)
        #expect(image.pipCommands == ["FROM base", "RUN python -m pip install numpy pandas==2.2"])
        #expect(
            ModalImage.registry("python:3.12-slim").baseCommands(builderVersion: "2025.06") == ["FROM python:3.12-slim"]
        )
    }

    @Test("the JWT's exp claim is read")
    func jwtExpiry() {
        let payload = Data(#"{"exp":1795755261}"#.utf8).base64EncodedString()
            .replacingOccurrences(of: "=", with: "")
        #expect(ModalClient.expiry(ofJWT: "e30.\(payload).sig") == 1_795_755_261)
        #expect(ModalClient.expiry(ofJWT: "garbage") == nil)
    }
}
