import Foundation
import SandboxVCR
import SandboxVCRTestSupport

@testable import SandboxVCRServer

/// One recorded exchange with the real SandboxFusion server (Fixtures/sandboxfusion/samples).
struct Sample: Sendable {
    let name: String
    let json: JSONValue

    init(_ prefix: String) throws {
        let folder = repositoryRoot.appendingPathComponent("Fixtures/sandboxfusion/samples")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        guard let file = files.first(where: { $0.hasPrefix(prefix + "-") }) else {
            throw RawHTTPError(description: "no sample \(prefix)")
        }
        name = file
        json = try parseJSON(Array(try Data(contentsOf: folder.appendingPathComponent(file))))
    }

    var method: String { json["request"]?["method"]?.stringValue ?? "" }
    var path: String { json["request"]?["path"]?.stringValue ?? "" }
    var status: Int {
        if case .integer(let digits)? = json["http_status"] { return Int(digits) ?? 0 }
        return 0
    }
    var response: JSONValue { json["response"] ?? .null }
    /// The real answer's length in bytes, from its `content-length` header.
    var responseLength: Int? { json["response_headers"]?["content-length"]?.stringValue.flatMap(Int.init) }

    /// The request's bytes as the sample's client sent them: a string body as is, an object as JSON.
    var rawRequest: [UInt8] {
        var headers: [(String, String)] = []
        if case .object(let members)? = json["request"]?["headers"] {
            headers = members.compactMap { name, value in value.stringValue.map { (name, $0) } }
        }
        let body: [UInt8]?
        switch json["request"]?["body"] {
        case .null?, nil: body = nil
        case .string(let text)?: body = Array(text.utf8)
        case let value?: body = value.pythonJSONBytes
        }
        return RawHTTP.request(method: method, path: path, headers: headers, body: body)
    }

    /// The real answer decoded as a result, for an executor that replays it.
    func result() throws -> ExecutionResult {
        let response = try JSONDecoder().decode(
            SandboxFusionWire.RunCodeResponse.self, from: Data(self.response.pythonJSONBytes))
        return try SandboxFusionWire.result(from: response)
    }
}
