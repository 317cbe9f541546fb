import ArgumentParser
import Dispatch
import Foundation
import SandboxVCRServer

@main
enum Main {
    static func main() {
        // `serve` runs its tasks on SwiftNIO's event loops, but with --modal-port: the gRPC server's tasks were seen
        // to deadlock at shutdown under that executor (a lock in a merged async sequence never released).
        let arguments = CommandLine.arguments.dropFirst()
        if arguments.first == "serve", !arguments.contains(where: { $0.hasPrefix("--modal-port") }) {
            ServeRuntime.useEventLoopsAsGlobalExecutor()
        }
        Task {
            await SandboxVCRCommand.main()
            exit(0)
        }
        dispatchMain()
    }
}
