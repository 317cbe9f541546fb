import Foundation

extension SandboxFusionExecutor {
    /// Runs notebook cells with `POST /run_jupyter`.
    ///
    /// - Parameter request: the cells and limits.
    /// - Returns: the server's answer; `cells` is empty unless `status` is `Success`.
    /// - Throws: ``ExecutionError`` as ``execute(_:)`` does.
    public func runJupyter(_ request: SandboxFusionJupyterRequest) async throws -> SandboxFusionJupyterResponse {
        let body = try Self.encode(request)
        let timeout =
            configuration.requestTimeout ?? request.totalTimeout.clampedToTimeLimit + configuration.timeoutMargin
        let (response, url, attempts) = try await send(
            method: "POST", path: "/run_jupyter", body: body, timeout: timeout)
        guard response.status == 200 else {
            var error = Self.httpStatusError(status: response.status, body: response.body, url: url)
            error.attempts = attempts
            throw error
        }
        do {
            return try JSONDecoder().decode(SandboxFusionJupyterResponse.self, from: response.body)
        } catch {
            throw ExecutionError(
                code: .undecodableResponse,
                message: "the answer of \(HTTPClient.redactedURL(url)) is not a /run_jupyter result "
                    + "(\(SandboxFusionWire.preview(response.body))): \(error)",
                url: HTTPClient.redactedURL(url))
        }
    }
}
