/// The version of SandboxVCR, reported by `sandbox-vcr --version` and recorded in cassettes.
public enum SandboxVCRVersion {
    public static let current = "0.1.0"
}
