import Foundation
public import Logging
import ModalProto
import SandboxVCR
import SwiftProtobuf
import Synchronization

/// A connection to Modal's control plane: credentials on every call, the V2 auth token (refreshed before it
/// expires), and cached app, builder-version and image lookups. Shared by the sandboxes of a pool.
public final class ModalClient: Sendable {
    public let configuration: ModalConfiguration
    let http: HTTPClient
    let control: GRPCChannel
    let logger: Logger

    private struct State {
        var authToken: (token: String, expiresAt: Double)?
        var apps: [String: String] = [:]
        var builderVersion: String?
        var images: [ModalImage: String] = [:]
    }

    private let state = Mutex(State())

    /// - Parameters:
    ///   - configuration: credentials and server.
    ///   - logger: gRPC calls at `debug`, never credentials.
    public init(configuration: ModalConfiguration, logger: Logger = Logger(label: "sandbox-vcr.modal")) {
        self.configuration = configuration
        self.logger = logger
        self.http = HTTPClient(
            configuration: .init(
                httpVersion: .http2PriorKnowledge, userAgent: "sandbox-vcr/\(SandboxVCRVersion.current)"),
            logger: logger)
        self.control = GRPCChannel(baseURL: configuration.serverURL, http: http, logger: logger)
    }

    deinit { http.shutdown() }

    /// A channel to a command router (its URL comes from the sandbox's router access), dialled as
    /// ``routerURL(_:serverURL:)`` says.
    func routerChannel(url: String) -> GRPCChannel {
        GRPCChannel(baseURL: Self.routerURL(url, serverURL: configuration.serverURL), http: http, logger: logger)
    }

    /// The URL a command router is dialled at: `url`, except that an `https` router URL handed out by an API server
    /// on loopback (`localhost`, 127.0.0.0/8, `::1`: a local Modal test server, whose router speaks cleartext) is
    /// dialled in cleartext, as Modal's Go SDK does. Never for an API server elsewhere.
    static func routerURL(_ url: String, serverURL: String) -> String {
        let scheme = "https://"
        guard url.lowercased().hasPrefix(scheme), GRPCChannel.isLoopback(url: serverURL) else { return url }
        return "http://" + url.dropFirst(scheme.count)
    }

    /// The headers of a control-plane call; `v2` calls also carry the auth token.
    func metadata(v2: Bool) async throws -> HTTPHeaders {
        var headers: HTTPHeaders = [
            "x-modal-client-type": "9",
            "x-modal-client-version": "1.0.0",
            "x-modal-libmodal-version": "sandbox-vcr/\(SandboxVCRVersion.current)",
            "x-modal-token-id": configuration.tokenID,
            "x-modal-token-secret": configuration.tokenSecret,
        ]
        if v2 { headers.add(name: "x-modal-auth-token", value: try await authToken()) }
        return headers
    }

    /// A control-plane call with retries; failures become ``ExecutionError``s.
    func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ method: ModalRPCMethod<Request, Response>, _ request: Request, v2: Bool = false,
        timeout: Duration = .seconds(60), sandboxCall: Bool = false
    ) async throws -> Response {
        do {
            return try await control.unary(
                method, request, metadata: { try await self.metadata(v2: v2) }, timeout: timeout,
                retry: .controlPlane, idempotencyKeys: true)
        } catch let error as GRPCStatusError {
            throw error.executionError(sandboxCall: sandboxCall, url: configuration.serverURL)
        }
    }

    /// The JWT for V2 sandbox calls, fetched with `AuthTokenGet` and reused until a minute before its `exp`.
    func authToken() async throws -> String {
        let now = Date().timeIntervalSince1970
        if let cached = state.withLock({ $0.authToken }), cached.expiresAt - 60 > now { return cached.token }
        let response: Modal_Client_AuthTokenGetResponse
        do {
            response = try await control.unary(
                ModalRPC.ModalClient.authTokenGet, Modal_Client_AuthTokenGetRequest(),
                metadata: { try await self.metadata(v2: false) }, timeout: .seconds(10))
        } catch let error as GRPCStatusError {
            throw error.executionError(url: configuration.serverURL)
        }
        let expiry = Self.expiry(ofJWT: response.token) ?? now + 300
        state.withLock { $0.authToken = (response.token, expiry) }
        return response.token
    }

    /// The `exp` claim of a JWT, if readable.
    static func expiry(ofJWT token: String) -> Double? {
        let parts = token.split(separator: ".")
        guard parts.count >= 2 else { return nil }
        var payload = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while payload.count % 4 != 0 { payload += "=" }
        guard let data = Data(base64Encoded: payload),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let exp = object["exp"] as? NSNumber
        else { return nil }
        return exp.doubleValue
    }

    /// The app's id (`AppGetOrCreate`, created if missing), cached by name.
    func appID(name: String) async throws -> String {
        if let cached = state.withLock({ $0.apps[name] }) { return cached }
        var request = Modal_Client_AppGetOrCreateRequest()
        request.appName = name
        request.environmentName = configuration.environment ?? ""
        request.objectCreationType = .createIfMissing
        let response = try await unary(ModalRPC.ModalClient.appGetOrCreate, request)
        state.withLock { $0.apps[name] = response.appID }
        return response.appID
    }

    /// The environment's image builder version (`EnvironmentGetOrCreate`), cached.
    func builderVersion() async throws -> String {
        if let cached = state.withLock({ $0.builderVersion }) { return cached }
        var request = Modal_Client_EnvironmentGetOrCreateRequest()
        request.deploymentName = configuration.environment ?? ""
        let response = try await unary(ModalRPC.ModalClient.environmentGetOrCreate, request)
        let version =
            response.metadata.settings.imageBuilderVersion.isEmpty
            ? "2025.06" : response.metadata.settings.imageBuilderVersion
        state.withLock { $0.builderVersion = version }
        return version
    }

    /// The image's id, built if needed (`ImageGetOrCreate`, then `ImageJoinStreaming` until a result), cached.
    func imageID(for image: ModalImage, appID: String) async throws -> String {
        if let cached = state.withLock({ $0.images[image] }) { return cached }
        let version = try await builderVersion()
        var definition = Modal_Client_Image()
        definition.dockerfileCommands = image.baseCommands(builderVersion: version)
        var imageID = try await buildLayer(definition, appID: appID, version: version, namespace: .global)
        if let commands = image.pipCommands {
            var layer = Modal_Client_Image()
            var base = Modal_Client_BaseImage()
            base.imageID = imageID
            base.dockerTag = "base"
            layer.baseImages = [base]
            layer.dockerfileCommands = commands
            imageID = try await buildLayer(layer, appID: appID, version: version, namespace: .workspace)
        }
        state.withLock { $0.images[image] = imageID }
        return imageID
    }

    private func buildLayer(
        _ image: Modal_Client_Image, appID: String, version: String, namespace: Modal_Client_DeploymentNamespace
    ) async throws -> String {
        var request = Modal_Client_ImageGetOrCreateRequest()
        request.image = image
        request.appID = appID
        request.namespace = namespace
        request.builderVersion = version
        let response = try await unary(ModalRPC.ModalClient.imageGetOrCreate, request)
        var result = response.hasResult ? response.result : Modal_Client_GenericResult()
        var lastEntryID = ""
        var rounds = 0
        while result.status == .unspecified {
            rounds += 1
            guard rounds <= 200 else {
                throw ExecutionError(
                    code: .timedOut, message: "the Modal image \(response.imageID) did not finish building")
            }
            var join = Modal_Client_ImageJoinStreamingRequest()
            join.imageID = response.imageID
            join.timeout = 55
            join.lastEntryID = lastEntryID
            let messages: [Modal_Client_ImageJoinStreamingResponse]
            do {
                messages = try await control.serverStreaming(
                    ModalRPC.ModalClient.imageJoinStreaming, join, metadata: { try await self.metadata(v2: false) },
                    timeout: .seconds(60))
            } catch let error as GRPCStatusError {
                throw error.executionError(url: configuration.serverURL)
            }
            for message in messages {
                if !message.entryID.isEmpty { lastEntryID = message.entryID }
                if message.hasResult, message.result.status != .unspecified { result = message.result }
            }
        }
        guard result.status == .success else {
            throw ExecutionError(
                code: .sandboxError,
                message: "building the Modal image failed (\(result.status)): \(result.exception)")
        }
        return response.imageID
    }
}
