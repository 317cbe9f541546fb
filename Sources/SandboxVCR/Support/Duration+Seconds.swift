extension Duration {
    /// The duration in seconds, as a `Double` (what cassettes store and SandboxFusion's JSON carries).
    package var inSeconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}
