import ArgumentParser

/// Temporary root listing only the cassette commands (the lead merges the real root command).
struct SandboxVCRRoot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox-vcr", abstract: "Record and replay code-execution sandboxes.",
        subcommands: [CassetteCommand.self])
}

func start() async {
    do {
        var command = try SandboxVCRRoot.parseAsRoot()
        if var asyncCommand = command as? any AsyncParsableCommand {
            try await asyncCommand.run()
        } else {
            try command.run()
        }
    } catch {
        SandboxVCRRoot.exit(withError: error)
    }
}

await start()
