import ArgumentParser
import SandboxVCR

/// A live backend, as `--backend` and `SANDBOX_BACKEND` name it.
enum BackendKind: String, ExpressibleByArgument, CaseIterable, Sendable {
    case sandboxfusion
    case modal
    case fake

    /// Parses a name in any case; `sandbox-fusion` and `sandbox_fusion` are `sandboxfusion`.
    init?(argument: String) {
        self.init(rawValue: argument.lowercased().filter { $0 != "-" && $0 != "_" })
    }
}

/// The options that choose what `run`, `grade` and `serve` execute against: a live backend, a cassette, or both.
struct ExecutorOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The live backend (modal reads the MODAL_* credentials, fake needs --rules). Default: fake with --rules, "
                + "sandboxfusion with --url; else (run, grade) $SANDBOX_BACKEND, else sandboxfusion.",
            valueName: "backend"))
    var backend: BackendKind?

    @Option(
        name: .customLong("url"),
        help: ArgumentHelp(
            "A SandboxFusion server, its base or /run_code URL (repeat, or separate with commas, for several). "
                + "Default: $SANDBOX_URL.",
            valueName: "url"))
    var urls: [String] = []

    @Option(
        help: ArgumentHelp("Answer from fake-executor rules in this JSON file (--backend fake).", valueName: "file"))
    var rules: String?

    @Option(help: ArgumentHelp("A cassette to replay from and record into.", valueName: "file"))
    var cassette: String?

    @Option(
        help: ArgumentHelp(
            "When to call the live backend and record. Default: $SANDBOX_VCR_RECORD, else missing when a live "
                + "backend is in use (never with $CI), never otherwise.",
            valueName: "mode"))
    var record: RecordMode?

    /// The options as a configuration for ``ExecutorStack/make(_:environment:logger:)``.
    func configuration(unnamedBackend: ExecutorConfiguration.UnnamedBackend) -> ExecutorConfiguration {
        ExecutorConfiguration(
            backend: backend, urls: urls, rules: rules, cassette: cassette, mode: record,
            unnamedBackend: unnamedBackend)
    }
}
