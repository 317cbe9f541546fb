/// Every benchmark suite, by the name given on the command line (`sandbox-vcr-bench <name>`).
/// Add a suite with one line, `"name": { try await MySuite.run() },` (a comma after the entry before it).
let benchmarkSuites: [String: @Sendable () async throws -> [BenchFigure]] = [
    "client": { try await ClientBenchmark.run(options: .current) },
    "cassette": { figures(suite: "cassette", try await CassetteBenchmarks.run(arguments: suiteArguments())) },
    "record": { figures(suite: "record", try await RecordingBenchmark.run(arguments: suiteArguments())) },
    "serve": { figures(suite: "serve", try await ServeBenchmarks.run(arguments: suiteArguments())) },
]

/// The options a dictionary-returning suite reads (`--requests N`, `--rounds N`).
private func suiteArguments() -> [String] {
    (BenchOptions.current.requests.map { ["--requests", String($0)] } ?? [])
        + (BenchOptions.current.rounds.map { ["--rounds", String($0)] } ?? [])
}

/// Turns a suite's named numbers into figures; the unit is the name's last `_` part (`replay_10k_median_us`).
private func figures(suite: String, _ values: [String: Double]) -> [BenchFigure] {
    values.sorted { $0.key < $1.key }.map { name, value in
        let unit = name.split(separator: "_").last.map(String.init) ?? ""
        return BenchFigure(suite: suite, name: name, value: value, unit: unit)
    }
}
