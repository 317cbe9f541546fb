import Foundation
public import SandboxVCR
import SandboxVCRTestSupport
import Synchronization

/// An in-process loopback HTTP server that answers every request at once with SandboxFusion's real answer to
/// `print("hello world")`: the client and the recorder are measured without a sandbox behind them.
public final class HelloServer: Sendable {
    /// The real server's answer to `print("hello world")` (sample 01).
    public static let answer = """
        {"status":"Success","message":"","compile_result":null,"run_result":{"status":"Finished",\
        "execution_time":0.02745819091796875,"return_code":0,"stdout":"hello world\\n","stderr":""},\
        "executor_pod_name":null,"files":{}}
        """

    private let server: LoopbackHTTPServer

    /// How long each answer waits, like a real sandbox running the code.
    public enum Delay: Sendable {
        /// Every answer after the same time.
        case fixed(Duration)
        /// Each answer after a time drawn from a log-normal distribution with this median and spread (the standard
        /// deviation of its logarithm; 0.5 puts the middle 80% between 0.53 and 1.9 times the median), from a fixed
        /// seed, as run times of real programs vary.
        case logNormal(median: Duration, sigma: Double)
    }

    /// Starts listening on a free loopback port.
    ///
    /// - Parameter delay: how long each answer waits (`nil`: at once).
    public init(delay: Delay? = nil) throws {
        let response = LoopbackHTTPServer.Response.json(Data(Self.answer.utf8))
        switch delay {
        case nil:
            server = try LoopbackHTTPServer { _ in .respond(response) }
        case .fixed(let duration):
            server = try LoopbackHTTPServer { _ in .respondAfter(duration, response) }
        case .logNormal(let median, let sigma):
            let draws = Mutex(SplitMix64(seed: 20_261_202))
            server = try LoopbackHTTPServer { _ in
                let factor = draws.withLock { exp(sigma * $0.nextGaussian()) }
                return .respondAfter(median * factor, response)
            }
        }
    }

    deinit { server.shutdown() }

    /// A live SandboxFusion client of this server, without retries.
    public func makeExecutor(concurrency: Int) -> SandboxFusionExecutor {
        SandboxFusionExecutor(
            configuration: SandboxFusionConfiguration(
                endpoints: [server.baseURL], maxConcurrency: concurrency, retryPolicy: .none))
    }
}

/// A small seeded generator (SplitMix64), so a benchmark's delays are the same from run to run.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    /// A uniform draw in (0, 1).
    mutating func nextUnit() -> Double { (Double(next() >> 11) + 0.5) / Double(1 << 53) }

    /// A standard normal draw (Box-Muller).
    mutating func nextGaussian() -> Double {
        sqrt(-2 * log(nextUnit())) * cos(2 * .pi * nextUnit())
    }
}
