// swift-tools-version: 6.2
import PackageDescription

/// Settings shared by every Swift target: Swift 6 mode, strict concurrency, upcoming features, warnings as errors.
let strictSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "SandboxVCR",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SandboxVCR", targets: ["SandboxVCR"]),
        .library(name: "SandboxVCRTesting", targets: ["SandboxVCRTesting"]),
        .executable(name: "sandbox-vcr", targets: ["sandbox-vcr"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "SandboxVCR",
            dependencies: [
                "CCurl",
                "CSQLite",
                "CZlib",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "SandboxVCRTesting",
            dependencies: ["SandboxVCR"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "SandboxVCRTestSupport",
            dependencies: ["SandboxVCR"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "sandbox-vcr",
            dependencies: [
                "SandboxVCR",
                "SandboxVCRTesting",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "cassette-stress",
            dependencies: ["SandboxVCR"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "sandbox-vcr-bench",
            dependencies: ["SandboxVCR", "SandboxVCRTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SandboxVCRTests",
            dependencies: ["SandboxVCR", "SandboxVCRTesting", "SandboxVCRTestSupport"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SandboxVCRTestingTests",
            dependencies: ["SandboxVCR", "SandboxVCRTesting"],
            exclude: ["__Cassettes__"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SandboxVCRCLITests",
            dependencies: ["SandboxVCR", "SandboxVCRTestSupport"],
            swiftSettings: strictSettings
        ),
    ]
)
