public import Foundation

extension SandboxFusionConfiguration {
    /// Reads the configuration from environment variables. This is the only place the library reads them.
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `SANDBOX_URL` | the full `/run_code` URL, as the tinker-cookbook client reads it | `http://localhost:8080/run_code` |
    /// | `SANDBOX_FUSION_ENDPOINT` | the base URL, as the official `sandbox-fusion` Python client reads it | — |
    /// | `SANDBOX_MAX_CONCURRENCY` | requests in flight at once | 4 |
    ///
    /// `SANDBOX_URL` wins when both URL variables are set (it names the exact URL, and it is the variable the
    /// graders being ported already use); `SANDBOX_FUSION_ENDPOINT` is read only when `SANDBOX_URL` is unset or
    /// empty. Either may list several servers separated by commas; requests are spread over them. A
    /// `SANDBOX_URL` that does not end in `/run_code` is taken as a base URL. Empty values count as unset.
    ///
    /// - Parameter environment: the variables; the process environment by default (tests pass a dictionary).
    /// - Throws: ``ExecutionError/Code/configuration`` for a URL that is not `http(s)://host…` or a concurrency
    ///   that is not a positive integer.
    public static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> Self {
        func value(_ name: String) -> String? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else {
                return nil
            }
            return text
        }
        let (variable, list): (String, String) =
            if let url = value("SANDBOX_URL") {
                ("SANDBOX_URL", url)
            } else if let endpoint = value("SANDBOX_FUSION_ENDPOINT") {
                ("SANDBOX_FUSION_ENDPOINT", endpoint)
            } else {
                ("SANDBOX_URL", defaultRunCodeURL)
            }
        let endpoints = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        guard !endpoints.isEmpty else {
            throw ExecutionError(
                code: .configuration, message: "\(variable) lists no URL; set it to e.g. \(defaultRunCodeURL)")
        }
        for endpoint in endpoints {
            guard let components = URLComponents(string: endpoint),
                let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
                let host = components.host, !host.isEmpty
            else {
                throw ExecutionError(
                    code: .configuration,
                    message: "\(variable) holds \"\(HTTPClient.redactedURL(endpoint))\", which is not an http(s) "
                        + "URL; set it to e.g. \(defaultRunCodeURL)")
            }
        }
        var maxConcurrency = 4
        if let text = value("SANDBOX_MAX_CONCURRENCY") {
            guard let number = Int(text), number > 0 else {
                throw ExecutionError(
                    code: .configuration,
                    message: "SANDBOX_MAX_CONCURRENCY is \"\(text)\"; set it to a positive integer such as 4")
            }
            maxConcurrency = number
        }
        return SandboxFusionConfiguration(endpoints: endpoints, maxConcurrency: maxConcurrency)
    }
}
