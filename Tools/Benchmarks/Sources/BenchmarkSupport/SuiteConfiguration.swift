public import Benchmark

/// Metrics the built-in set lacks: per-request figures and figures read from another process.
///
/// Custom metrics are not scaled by `scalingFactor`: each value is already per request (or per process).
public enum SuiteMetric {
    /// Completed requests per second of one sample (more precise than `throughput`, which counts samples).
    public static let requestsPerSecond = BenchmarkMetric.custom(
        "requests/s", polarity: .prefersLarger, useScalingFactor: false)
    /// The latency of each request, in microseconds: its percentiles are the requests' percentiles.
    public static let latencyMicroseconds = BenchmarkMetric.custom("latency (us)", useScalingFactor: false)
    /// The latency of each request, in nanoseconds (sub-microsecond work: replays, keys).
    public static let latencyNanoseconds = BenchmarkMetric.custom("latency (ns)", useScalingFactor: false)
    /// Process CPU time (user + system, every thread, in-process servers included) per request, in nanoseconds.
    public static let cpuPerRequestNanoseconds = BenchmarkMetric.custom("CPU/request (ns)", useScalingFactor: false)
    /// Resident memory growth since the end of setup (after the warm-up), in KiB.
    public static let residentGrowthKiB = BenchmarkMetric.custom("RSS growth (KiB)", useScalingFactor: false)
    /// Process CPU time per request, in microseconds (requests that take milliseconds of CPU).
    public static let cpuPerRequestMicroseconds = BenchmarkMetric.custom("CPU/request (us)", useScalingFactor: false)
    /// Request and response body bytes moved per second.
    public static let bytesPerSecond = BenchmarkMetric.custom(
        "bytes/s", polarity: .prefersLarger, useScalingFactor: false)
}

/// How far a metric may move from the saved baseline before `swift package benchmark baseline check` fails.
///
/// Timing figures on a shared 2-core machine move by tens of percent between runs, so their tolerance is wide: the
/// check catches a regression by a factor, not by a few percent. Allocation counts are steadier and checked closer.
public enum Tolerance {
    /// Latencies, rates and CPU time: 35% at the median.
    public static var timing: BenchmarkThresholds { BenchmarkThresholds(relative: [.p50: 35.0]) }
    /// Malloc counts: 10% at the median.
    public static var allocations: BenchmarkThresholds { BenchmarkThresholds(relative: [.p50: 10.0]) }
    /// Resident memory: 25% at the median.
    public static var memory: BenchmarkThresholds { BenchmarkThresholds(relative: [.p50: 25.0]) }
    /// Reported but never failing a check (the default tolerance, 5%, would fail on noise alone).
    public static var reportedOnly: BenchmarkThresholds { BenchmarkThresholds(relative: [:], absolute: [:]) }
}

extension Benchmark.Configuration {
    /// A suite's configuration: `checked` metrics with their tolerance, `reported` metrics shown but never checked.
    ///
    /// Every measured metric gets an explicit threshold, so that none falls back to the plugin's 5% default.
    /// - Parameters:
    ///   - checked: the headline metrics and how far each may regress.
    ///   - reported: further metrics to show.
    ///   - tags: shown after the benchmark's name, e.g. `["interactions": "100000"]`.
    ///   - scalingFactor: requests per sample, when a sample runs many.
    ///   - maxIterations: the most samples.
    ///   - maxDuration: the longest time to sample for.
    ///   - warmupIterations: samples run first and thrown away.
    public static func suite(
        checked: [BenchmarkMetric: BenchmarkThresholds],
        reported: [BenchmarkMetric] = [],
        tags: [String: String] = [:],
        scalingFactor: BenchmarkScalingFactor = .one,
        maxIterations: Int,
        maxDuration: Duration = .seconds(10),
        warmupIterations: Int = 1
    ) -> Self {
        let metrics = checked.keys.sorted { "\($0)" < "\($1)" } + reported.filter { checked[$0] == nil }
        var thresholds = checked
        for metric in reported where thresholds[metric] == nil { thresholds[metric] = Tolerance.reportedOnly }
        var units: [BenchmarkMetric: BenchmarkUnits] = [:]
        for metric in metrics {
            if case .custom = metric { units[metric] = .count }
        }
        return Self(
            metrics: metrics, tags: tags, units: units, warmupIterations: warmupIterations,
            scalingFactor: scalingFactor, maxDuration: maxDuration, maxIterations: maxIterations,
            thresholds: thresholds)
    }
}

extension Benchmark {
    /// Records each value of `values` as one measurement of a custom metric (so percentiles are per value).
    public func record(_ metric: BenchmarkMetric, _ values: some Sequence<Int>) {
        for value in values { measurement(metric, value) }
    }
}
