internal import NIOCore
internal import NIOPosix

/// How `serve`'s process runs Swift concurrency.
public enum ServeRuntime {
    /// Makes SwiftNIO's event loops Swift concurrency's global executor, so a request's tasks run on the thread
    /// that reads and writes its connection (no hop to the cooperative pool and back). Call before any task runs.
    ///
    /// - Returns: whether the executor was installed.
    @discardableResult
    public static func useEventLoopsAsGlobalExecutor() -> Bool {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }
}
