import Foundation

extension SandboxFusionExecutor {
    /// Runs code the way the tinker-cookbook `SandboxFusionClient.run` does, for porting Python graders.
    ///
    /// Sends `{code, language, run_timeout: int(timeout), files: {name: base64(utf8)}}` and never throws:
    /// - 200: `success` is `status == "Success"`; a `SandboxError` also sets `error` to the server's message;
    /// - another status: `error` is `HTTP <code>: <body text>`;
    /// - no answer (transport failure, cancellation): `error` describes it.
    ///
    /// - Parameters:
    ///   - code: the source code.
    ///   - files: files to write first, by name, as text.
    ///   - timeout: the run timeout (sent as whole seconds rounded toward zero, as Python's `int()` does;
    ///     at most `Duration.maximumTimeLimit`).
    ///   - language: the SandboxFusion language name.
    public func run(
        code: String, files: [String: String] = [:], timeout: Duration = .seconds(10), language: String = "python"
    ) async -> (success: Bool, response: SandboxFusionRunResponse) {
        let runTimeout = Duration.seconds(
            timeout.clampedToTimeLimit.wholeSeconds(clampedTo: 0...Int64.max, rounding: .towardZero))
        let body = SandboxFusionWire.RunCodeBody(
            code: code, language: language, run_timeout: runTimeout.inSeconds,
            files: files.mapValues { Optional(Data($0.utf8).base64EncodedString()) })
        do {
            let data = try Self.encode(body)
            let timeoutLimit =
                configuration.requestTimeout
                ?? runTimeout + ExecutionRequest.defaultTimeout + configuration.timeoutMargin
            let (response, _, _) = try await send(method: "POST", path: "/run_code", body: data, timeout: timeoutLimit)
            guard response.status == 200 else {
                return (false, SandboxFusionRunResponse(error: "HTTP \(response.status): \(response.bodyText)"))
            }
            guard let wire = try? JSONDecoder().decode(SandboxFusionWire.RunCodeResponse.self, from: response.body)
            else {
                return (
                    false,
                    SandboxFusionRunResponse(
                        error: "the answer is not a /run_code result: \(SandboxFusionWire.preview(response.body))")
                )
            }
            if wire.status == ExecutionStatus.sandboxError.rawValue {
                return (false, SandboxFusionRunResponse(wire, error: wire.message ?? ""))
            }
            return (wire.status == ExecutionStatus.success.rawValue, SandboxFusionRunResponse(wire))
        } catch let error as ExecutionError {
            return (false, SandboxFusionRunResponse(error: error.description))
        } catch {
            return (false, SandboxFusionRunResponse(error: "\(error)"))
        }
    }
}
