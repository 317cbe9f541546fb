internal import CCurl
import Foundation
import Synchronization

/// Owns one curl multi handle, driven by one dedicated thread (`curl_multi_poll` / `curl_multi_wakeup`).
///
/// Other threads only append commands to a locked queue and wake the thread; everything else, every easy
/// handle and every callback, runs on the loop thread. See https://curl.se/libcurl/c/libcurl-multi.html.
final class CurlMultiLoop: Sendable {
    /// A transfer to start: the request, when it must be done, and who waits for the answer.
    struct Start: Sendable {
        var id: UInt64
        var request: HTTPRequest
        var httpVersion: HTTPVersion
        var deadline: ContinuousClock.Instant?
        var continuation: CheckedContinuation<HTTPResponse, any Error>
    }

    enum Command: Sendable {
        case start(Start)
        case cancel(UInt64)
    }

    struct Options: Sendable {
        var connectTimeoutMilliseconds: Int
        var maxConnectionsPerHost: Int?
        var maxCachedConnections: Int
        var userAgent: String
    }

    private struct Queue {
        var commands: [Command] = []
        var isShutDown = false
    }

    private let multi: CurlMultiHandle
    private let queue = Mutex(Queue())
    private let options: Options
    private let finished = Mutex<Bool>(false)

    init(options: Options) {
        CurlGlobal.ensureInitialized()
        self.options = options
        self.multi = CurlMultiHandle()
        _ = ccurl_multi_setopt_long(multi.pointer, CURLMOPT_PIPELINING, ccurl_pipe_multiplex())
        _ = ccurl_multi_setopt_long(multi.pointer, CURLMOPT_MAXCONNECTS, options.maxCachedConnections)
        if let perHost = options.maxConnectionsPerHost {
            _ = ccurl_multi_setopt_long(multi.pointer, CURLMOPT_MAX_HOST_CONNECTIONS, perHost)
        }
        let thread = Thread { [self] in run() }
        thread.name = "sandbox-vcr.curl"
        thread.start()
    }

    /// Queues a command and wakes the loop. Returns `false` (and queues nothing) once the loop is shut down.
    @discardableResult
    func submit(_ command: Command) -> Bool {
        let accepted = queue.withLock { queue in
            guard !queue.isShutDown else { return false }
            queue.commands.append(command)
            return true
        }
        if accepted { curl_multi_wakeup(multi.pointer) }
        return accepted
    }

    /// Queues a start unless the current task is already cancelled (checked under the lock, so a cancellation
    /// that comes later finds the start queued and its cancel command after it).
    func submitStartUnlessCancelled(_ start: Start) -> ExecutionError? {
        let outcome: ExecutionError? = queue.withLock { queue in
            if queue.isShutDown {
                return ExecutionError(
                    code: .cancelled, message: "the HTTP client was shut down before the request started",
                    url: HTTPClient.redactedURL(start.request.url))
            }
            if Task.isCancelled {
                return ExecutionError(
                    code: .cancelled, message: "the task was cancelled before the request started",
                    url: HTTPClient.redactedURL(start.request.url))
            }
            queue.commands.append(.start(start))
            return nil
        }
        if outcome == nil { curl_multi_wakeup(multi.pointer) }
        return outcome
    }

    /// Stops the loop: transfers still running fail with ``ExecutionError/Code/cancelled``.
    func shutdown() {
        let first = queue.withLock { queue in
            defer { queue.isShutDown = true }
            return !queue.isShutDown
        }
        if first { curl_multi_wakeup(multi.pointer) }
    }

    // MARK: Loop thread

    private func run() {
        let transfers = TransferTable(multi: multi.pointer, options: options)
        var batch: [Command] = []
        while true {
            let isShutDown = queue.withLock { queue in
                swap(&batch, &queue.commands)
                return queue.isShutDown
            }
            for command in batch {
                switch command {
                case .start(let start): transfers.start(start)
                case .cancel(let id): transfers.cancel(id: id)
                }
            }
            batch.removeAll(keepingCapacity: true)
            if isShutDown {
                transfers.failAll()
                return
            }
            var running: Int32 = 0
            _ = curl_multi_perform(multi.pointer, &running)
            transfers.afterPerform()
            _ = curl_multi_poll(multi.pointer, nil, 0, 1000, nil)
        }
    }
}

/// Owns the `CURLM *`.
///
/// `@unchecked Sendable`: the pointer is used by the loop thread only, except `curl_multi_wakeup`, which libcurl
/// documents as safe to call from any thread (https://curl.se/libcurl/c/curl_multi_wakeup.html). The loop thread
/// holds the owning ``CurlMultiLoop`` until it returns, so the handle outlives every use.
final class CurlMultiHandle: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer

    init() {
        guard let pointer = curl_multi_init() else { fatalError("curl_multi_init failed (out of memory)") }
        self.pointer = pointer
    }

    deinit { curl_multi_cleanup(pointer) }
}

/// `curl_global_init`, once per process (https://curl.se/libcurl/c/curl_global_init.html).
enum CurlGlobal {
    private static let result: UInt32 = curl_global_init(ccurl_global_all()).rawValue

    /// Whether this libcurl (before 8.0.0) breaks reused HTTP/2 prior-knowledge connections
    /// (https://github.com/curl/curl/issues/10634); ``PriorKnowledgeConnections`` shares them nonetheless.
    static let reusesPriorKnowledgeConnectionsWrongly: Bool = {
        ensureInitialized()
        guard let info = curl_version_info(CURLversion(rawValue: ccurl_version_now())) else { return true }
        return info.pointee.version_num < 0x08_00_00
    }()

    /// Whether this libcurl (before 8.1.0) can drop the trailers of an HTTP/2 stream multiplexed beside others.
    ///
    /// Its `lib/http2.c` hands each stream a receive buffer of `CURLOPT_BUFFERSIZE` bytes (16 KB by default); data
    /// for a stream whose buffer is full pauses the whole connection's input on that stream, and another stream
    /// that has ended meanwhile is then reported done ("closed overrides paused") without the trailers it received
    /// (https://github.com/curl/curl/blob/curl-7_88_1/lib/http2.c, `cf_h2_recv`). Its body arrives whole. 8.1.0
    /// rewrote that buffering (https://github.com/curl/curl/commit/744dcf22fa) and the path is gone.
    static let losesTrailersOfMultiplexedStreams: Bool = {
        ensureInitialized()
        guard let info = curl_version_info(CURLversion(rawValue: ccurl_version_now())) else { return true }
        return info.pointee.version_num < 0x08_01_00
    }()

    /// libcurl's version text, e.g. `7.88.1`.
    static let version: String = {
        ensureInitialized()
        guard let info = curl_version_info(CURLversion(rawValue: ccurl_version_now())),
            let text = info.pointee.version
        else { return "unknown" }
        return String(cString: text)
    }()

    static func ensureInitialized() {
        precondition(result == CURLE_OK.rawValue, "curl_global_init failed with curl code \(result)")
    }
}
