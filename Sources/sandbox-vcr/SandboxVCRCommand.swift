import ArgumentParser

/// The `sandbox-vcr` command line. (Temporary root listing only `serve`; the lead merges the real root.)
@main
struct SandboxVCRCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox-vcr",
        abstract: "Record, replay and fake code-execution sandboxes.",
        subcommands: [ServeCommand.self])
}
