/// Every benchmark suite, by the name given on the command line (`sandbox-vcr-bench <name>`).
/// Add a suite with one line, `"name": { try await MySuite.run() },` (a comma after the entry before it).
let benchmarkSuites: [String: @Sendable () async throws -> [BenchFigure]] = [
    "client": { try await ClientBenchmark.run(options: .current) }
]
