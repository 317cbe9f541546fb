import Foundation
import SandboxVCR

/// Where Modal is and who is calling: credentials, server URL, environment, and the pool's limits.
///
/// ``fromEnvironment(_:)`` is the only place that reads the environment or `~/.modal.toml`. The token secret never
/// appears in ``description`` or in any error.
///
/// ```swift
/// let configuration = try ModalConfiguration.fromEnvironment(ProcessInfo.processInfo.environment)
/// let sandbox = try await ModalSandbox.create(configuration: configuration)
/// ```
public struct ModalConfiguration: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The default API server.
    public static let defaultServerURL = "https://api.modal.com"

    /// `MODAL_TOKEN_ID` (`ak-…`).
    public var tokenID: String
    /// `MODAL_TOKEN_SECRET` (`as-…`). Never logged or shown.
    public var tokenSecret: String
    /// The API server, `https://api.modal.com` unless a test server is used (`http://` = cleartext HTTP/2).
    public var serverURL: String
    /// The Modal environment, or `nil` for the workspace's default.
    public var environment: String?
    /// The profile the credentials came from, if any.
    public var profile: String?
    /// `MODAL_POOL_SIZE`: warm sandboxes a ``ModalSandboxPool`` keeps at most (default 32).
    public var poolSize: Int
    /// `MODAL_CREATION_RATE_LIMIT`: sandbox creations per second at most (default 4).
    public var creationRateLimit: Double

    public init(
        tokenID: String, tokenSecret: String, serverURL: String = ModalConfiguration.defaultServerURL,
        environment: String? = nil, profile: String? = nil, poolSize: Int = 32, creationRateLimit: Double = 4
    ) {
        self.tokenID = tokenID
        self.tokenSecret = tokenSecret
        self.serverURL = serverURL
        self.environment = environment
        self.profile = profile
        self.poolSize = max(1, poolSize)
        self.creationRateLimit = creationRateLimit > 0 ? creationRateLimit : 4
    }

    public var description: String {
        "ModalConfiguration(server: \(serverURL), token: \(tokenID), secret: <redacted>"
            + (environment.map { ", environment: \($0)" } ?? "") + (profile.map { ", profile: \($0)" } ?? "")
            + ", pool: \(poolSize), creations/s: \(creationRateLimit))"
    }

    public var debugDescription: String { description }

    /// A mirror without the secret, so `dump` and debuggers never show it.
    public var customMirror: Mirror {
        Mirror(
            self,
            children: [
                "tokenID": tokenID, "tokenSecret": "<redacted>", "serverURL": serverURL,
                "environment": environment as Any, "profile": profile as Any, "poolSize": poolSize,
                "creationRateLimit": creationRateLimit,
            ], displayStyle: .struct)
    }

    /// How to provide credentials, for error messages.
    static let credentialsHelp =
        "set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (create a token with `modal token new` or in Modal's web "
        + "settings), or write a profile with token_id and token_secret to ~/.modal.toml (or the file named by "
        + "MODAL_CONFIG_PATH; choose the profile with MODAL_PROFILE or `active = true`)"

    /// Reads the configuration: `MODAL_TOKEN_ID` / `MODAL_TOKEN_SECRET` override the profile's; the profile file is
    /// `MODAL_CONFIG_PATH` else `~/.modal.toml`; the profile is `MODAL_PROFILE` else the one with `active = true`
    /// (else the only one); `MODAL_ENVIRONMENT` else the profile's `environment`; `MODAL_SERVER_URL` else the
    /// profile's `server_url` else `https://api.modal.com`; `MODAL_POOL_SIZE`, `MODAL_CREATION_RATE_LIMIT`.
    ///
    /// - Throws: ``ExecutionError`` with code ``ExecutionError/Code/configuration`` when credentials are missing,
    ///   the profile file cannot be parsed, a named profile does not exist, or a number is malformed.
    public static func fromEnvironment(_ environment: [String: String]) throws -> ModalConfiguration {
        func value(_ name: String) -> String? {
            guard let value = environment[name]?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty
            else { return nil }
            return value
        }
        let path: String
        if let configured = value("MODAL_CONFIG_PATH") {
            path = configured
        } else if let home = value("HOME") {
            path = (home as NSString).appendingPathComponent(".modal.toml")
        } else {
            path = ""
        }
        var profileName = value("MODAL_PROFILE")
        var profile: [String: ModalTOML.Value] = [:]
        if !path.isEmpty, FileManager.default.fileExists(atPath: path) {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ExecutionError(
                    code: .configuration, message: "cannot read the Modal profile file \(path): \(error)")
            }
            let sections: [String: [String: ModalTOML.Value]]
            do {
                sections = try ModalTOML.parse(text)
            } catch {
                throw ExecutionError(
                    code: .configuration,
                    message: "the Modal profile file \(path) is not valid TOML (\(error)); fix it "
                        + "or point MODAL_CONFIG_PATH at another file")
            }
            let names = sections.keys.filter { !$0.isEmpty }.sorted()
            if let name = profileName {
                guard let found = sections[name] else {
                    throw ExecutionError(
                        code: .configuration,
                        message: "MODAL_PROFILE names the profile \"\(name)\", which \(path) does not have (it has: "
                            + "\(names.joined(separator: ", "))); fix MODAL_PROFILE or add the profile")
                }
                profile = found
            } else if let active = names.first(where: { sections[$0]?["active"] == .bool(true) }) {
                profileName = active
                profile = sections[active] ?? [:]
            } else if names.count == 1 {
                profileName = names[0]
                profile = sections[names[0]] ?? [:]
            }
        } else if let name = profileName, !path.isEmpty, value("MODAL_TOKEN_ID") == nil {
            throw ExecutionError(
                code: .configuration,
                message: "MODAL_PROFILE is \"\(name)\" but the profile file \(path) does not exist; "
                    + credentialsHelp)
        }
        func profileValue(_ key: String) -> String? {
            guard let text = profile[key]?.text, !text.isEmpty else { return nil }
            return text
        }
        let tokenID = value("MODAL_TOKEN_ID") ?? profileValue("token_id")
        let tokenSecret = value("MODAL_TOKEN_SECRET") ?? profileValue("token_secret")
        guard let tokenID, let tokenSecret else {
            let missing = tokenID == nil ? "MODAL_TOKEN_ID" : "MODAL_TOKEN_SECRET"
            throw ExecutionError(
                code: .configuration,
                message:
                    "no Modal credentials (\(missing) is not set\(profileName.map { " and profile \"\($0)\" has none" } ?? "")); "
                    + credentialsHelp)
        }
        let poolSize: Int
        if let text = value("MODAL_POOL_SIZE") {
            guard let size = Int(text), size > 0 else {
                throw ExecutionError(
                    code: .configuration, message: "MODAL_POOL_SIZE must be a positive integer, not \"\(text)\"")
            }
            poolSize = size
        } else {
            poolSize = 32
        }
        let rate: Double
        if let text = value("MODAL_CREATION_RATE_LIMIT") {
            guard let parsed = Double(text), parsed > 0 else {
                throw ExecutionError(
                    code: .configuration,
                    message: "MODAL_CREATION_RATE_LIMIT must be a positive number, not \"\(text)\"")
            }
            rate = parsed
        } else {
            rate = 4
        }
        let serverURL = value("MODAL_SERVER_URL") ?? profileValue("server_url") ?? defaultServerURL
        guard serverURL.hasPrefix("https://") || serverURL.hasPrefix("http://") else {
            throw ExecutionError(
                code: .configuration,
                message: "the Modal server URL \"\(serverURL)\" must start with https:// or http://")
        }
        return ModalConfiguration(
            tokenID: tokenID, tokenSecret: tokenSecret, serverURL: serverURL,
            environment: value("MODAL_ENVIRONMENT") ?? profileValue("environment"), profile: profileName,
            poolSize: poolSize, creationRateLimit: rate)
    }
}
