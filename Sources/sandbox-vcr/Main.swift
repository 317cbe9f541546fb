import ArgumentParser
import Dispatch
import Foundation
import SandboxVCRServer

@main
enum Main {
    static func main() {
        if CommandLine.arguments.dropFirst().first == "serve" { ServeRuntime.useEventLoopsAsGlobalExecutor() }
        Task {
            await SandboxVCRCommand.main()
            exit(0)
        }
        dispatchMain()
    }
}
