// swift-tools-version: 6.2
// SandboxVCR's benchmarks, on ordo-one/benchmark. A package of their own so that users of SandboxVCR never resolve
// the benchmark package: run them with `Tools/bench` (or `swift package --package-path Tools/Benchmarks benchmark`).
import PackageDescription

/// Settings shared by every target, as in the root package.
let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .treatAllWarnings(as: .error),
]

/// One benchmark suite: an executable in `Benchmarks/<name>/`, where the benchmark plugin looks for them.
func benchmarkTarget(_ name: String, dependencies: [Target.Dependency]) -> Target {
    .executableTarget(
        name: name,
        dependencies: [
            "BenchmarkSupport",
            .product(name: "Benchmark", package: "benchmark"),
            .product(name: "SandboxVCR", package: "SandboxVCR"),
        ] + dependencies,
        path: "Benchmarks/\(name)",
        swiftSettings: strictSettings,
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    )
}

let package = Package(
    name: "SandboxVCRBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "SandboxVCR", path: "../.."),
        // jemalloc is not installed here: malloc counts come from the malloc interposer.
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // What several suites share: the loopback hello-world server, load drivers, process figures, metrics,
        // realistic payloads, child processes.
        // glibc's count of the bytes malloc has handed out (live heap, apart from what the allocator keeps free).
        .target(name: "CHeapFigures"),
        .target(
            name: "BenchmarkSupport",
            dependencies: [
                "CHeapFigures",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "SandboxVCR", package: "SandboxVCR"),
                .product(name: "SandboxVCRTestSupport", package: "SandboxVCR"),
            ],
            swiftSettings: strictSettings
        ),
        benchmarkTarget("ClientBenchmarks", dependencies: []),
        benchmarkTarget("CassetteBenchmarks", dependencies: []),
        benchmarkTarget("RecordBenchmarks", dependencies: []),
        benchmarkTarget(
            "PayloadBenchmarks",
            dependencies: [.product(name: "SandboxVCRTestSupport", package: "SandboxVCR")]
        ),
        benchmarkTarget(
            "ServeBenchmarks",
            dependencies: [
                .product(name: "SandboxVCRServer", package: "SandboxVCR"),
                .product(name: "SandboxVCRTestSupport", package: "SandboxVCR"),
                .product(name: "SandboxVCRWebUI", package: "SandboxVCR"),
            ]
        ),
        benchmarkTarget(
            "ModalBenchmarks",
            dependencies: [
                .product(name: "SandboxVCRModal", package: "SandboxVCR"),
                .product(name: "SandboxVCRModalServer", package: "SandboxVCR"),
                .product(name: "SandboxVCRTestSupport", package: "SandboxVCR"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
