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

/// A product of a package only the `Server` trait needs (`serve`'s HTTP server).
func server(_ name: String, _ package: String) -> Target.Dependency {
    .product(name: name, package: package, condition: .when(traits: ["Server"]))
}

/// A product of a package only the `Modal` trait needs (Modal's messages and `~/.modal.toml`).
func modal(_ name: String, _ package: String) -> Target.Dependency {
    .product(name: name, package: package, condition: .when(traits: ["Modal"]))
}

/// A product of a package only the `ModalServer` trait needs (`serve --modal-port`'s gRPC server).
func modalServer(_ name: String, _ package: String) -> Target.Dependency {
    .product(name: name, package: package, condition: .when(traits: ["ModalServer"]))
}

/// A product of a package only the `CommandLine` trait needs (the `sandbox-vcr` tool).
func commandLine(_ name: String, _ package: String) -> Target.Dependency {
    .product(name: name, package: package, condition: .when(traits: ["CommandLine"]))
}

let package = Package(
    name: "SandboxVCR",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SandboxVCR", targets: ["SandboxVCR"]),
        .library(name: "SandboxVCRTesting", targets: ["SandboxVCRTesting"]),
        .library(name: "SandboxVCRModal", targets: ["SandboxVCRModal"]),
        // The `serve` server and the loopback test servers, as products for the benchmarks package
        // (Tools/Benchmarks), which depends on this package by path.
        .library(name: "SandboxVCRServer", targets: ["SandboxVCRServer"]),
        .library(name: "SandboxVCRModalServer", targets: ["SandboxVCRModalServer"]),
        .library(name: "SandboxVCRWebUI", targets: ["SandboxVCRWebUI"]),
        .library(name: "SandboxVCRTestSupport", targets: ["SandboxVCRTestSupport"]),
        .executable(name: "sandbox-vcr", targets: ["sandbox-vcr"]),
    ],
    // Everything is on by default (this checkout builds and tests it all). A package that needs only the library
    // and its test helpers depends on this one with `traits: []` and resolves GRDB and swift-log alone: no
    // SwiftNIO, Hummingbird, protobuf, TOML or argument parser, and none of their build plugins.
    traits: [
        .trait(name: "Server", description: "The SandboxFusion-compatible server (SandboxVCRServer): Hummingbird."),
        .trait(name: "Modal", description: "The Modal backend (SandboxVCRModal, ModalProto): protobuf, TOMLKit."),
        .trait(
            name: "ModalServer",
            description: "Modal's gRPC API served from a cassette (SandboxVCRModalServer): grpc-swift 2 over SwiftNIO.",
            enabledTraits: ["Modal"]),
        .trait(
            name: "CommandLine", description: "The sandbox-vcr tool (it serves and speaks Modal).",
            enabledTraits: ["Server", "Modal", "ModalServer"]),
        .default(enabledTraits: ["CommandLine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // HTTPTypes: header names of the dashboard's answers (already a Hummingbird dependency).
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        // NIOHTTPTypes: the HTTP parts `serve`'s connection deadlines observe (already a Hummingbird dependency).
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // `serve --modal-port`: the gRPC server, its HTTP/2 transport and protobuf coding (SandboxVCRModalServer).
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        // The cassette store (SandboxVCR). It links the system libsqlite3.
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        // ~/.modal.toml (SandboxVCRModal). It wraps toml++ (C++17): about 25 s of CPU on a cold debug build.
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // SHA-256 from OpenSSL's libcrypto, which libcurl links already (no extra build, ~1 GB/s with SHA-NI).
        .systemLibrary(
            name: "CCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "SandboxVCR",
            dependencies: [
                "CCrypto",
                "CCurl",
                "CZlib",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Modal's API messages, generated by Tools/gen-modal-proto (do not edit by hand).
        .target(
            name: "ModalProto",
            dependencies: [modal("SwiftProtobuf", "swift-protobuf")],
            exclude: ["INCLUDED.txt"],
            swiftSettings: strictSettings
        ),
        // The Modal backend: gRPC over the libcurl transport, sandboxes, the pool and recorded sessions.
        .target(
            name: "SandboxVCRModal",
            dependencies: [
                "SandboxVCR",
                "ModalProto",
                modal("SwiftProtobuf", "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
                modal("TOMLKit", "TOMLKit"),
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
        // The web pages: serve's dashboard, cassette browse and grade --html (HTML, CSS and script in the binary).
        .target(
            name: "SandboxVCRWebUI",
            dependencies: ["SandboxVCR"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "SandboxVCRServer",
            dependencies: [
                "SandboxVCR",
                "SandboxVCRWebUI",
                server("Hummingbird", "hummingbird"),
                server("HummingbirdCore", "hummingbird"),
                server("HTTPTypes", "swift-http-types"),
                server("NIOCore", "swift-nio"),
                server("NIOHTTPTypes", "swift-nio-extras"),
                server("NIOPosix", "swift-nio"),
                server("ServiceLifecycle", "swift-service-lifecycle"),
                server("UnixSignals", "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Modal's services as gRPC server stubs, generated by Tools/gen-modal-proto (do not edit by hand).
        .target(
            name: "ModalGRPC",
            dependencies: [
                "ModalProto",
                modalServer("GRPCCore", "grpc-swift-2"),
                modalServer("GRPCProtobuf", "grpc-swift-protobuf"),
            ],
            swiftSettings: strictSettings
        ),
        // `serve --modal-port`: Modal's API from a cassette (replay) and through to a real Modal (record).
        .target(
            name: "SandboxVCRModalServer",
            dependencies: [
                "SandboxVCR",
                "SandboxVCRWebUI",
                "SandboxVCRModal",
                "ModalProto",
                "ModalGRPC",
                modal("SwiftProtobuf", "swift-protobuf"),
                modalServer("GRPCCore", "grpc-swift-2"),
                modalServer("GRPCNIOTransportHTTP2Posix", "grpc-swift-nio-transport"),
                modalServer("GRPCProtobuf", "grpc-swift-protobuf"),
                modalServer("NIOCore", "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "sandbox-vcr",
            dependencies: [
                "SandboxVCR",
                "SandboxVCRTesting",
                "SandboxVCRServer",
                "SandboxVCRModal",
                "SandboxVCRModalServer",
                "SandboxVCRWebUI",
                commandLine("ArgumentParser", "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // A peer process for the multi-process cassette tests (CassetteFileTests), not a product.
        .executableTarget(
            name: "cassette-stress",
            dependencies: ["SandboxVCR"],
            swiftSettings: strictSettings
        ),
        // libFuzzer targets (built by Tools/fuzz with -DFUZZING -sanitize=fuzzer,address in .build-fuzz); built
        // normally, a replayer of inputs (the tests replay Fixtures/fuzz with it). Not a product.
        .executableTarget(
            name: "sandbox-vcr-fuzz",
            dependencies: [
                "SandboxVCR",
                "SandboxVCRServer",
                "SandboxVCRModal",
                "ModalProto",
                modal("SwiftProtobuf", "swift-protobuf"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SandboxVCRTests",
            dependencies: [
                "SandboxVCR", "SandboxVCRTesting", "SandboxVCRTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SandboxVCRTestingTests",
            // SandboxVCRModal and SandboxVCRTestSupport: the README's Modal examples are compiled here.
            dependencies: ["SandboxVCR", "SandboxVCRTesting", "SandboxVCRModal", "SandboxVCRTestSupport"],
            exclude: ["__Cassettes__"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SandboxVCRServerTests",
            dependencies: [
                "SandboxVCR",
                "SandboxVCRServer",
                "SandboxVCRModalServer",
                "SandboxVCRTesting",
                "SandboxVCRTestSupport",
                "SandboxVCRWebUI",
                .product(name: "Logging", package: "swift-log"),
                server("NIOCore", "swift-nio"),
                modalServer("NIOEmbedded", "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "ModalProtoTests",
            dependencies: [
                "ModalProto",
                modal("SwiftProtobuf", "swift-protobuf"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SandboxVCRModalTests",
            dependencies: [
                "SandboxVCR",
                "SandboxVCRModal",
                "SandboxVCRTestSupport",
                "ModalProto",
                modal("SwiftProtobuf", "swift-protobuf"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SandboxVCRCLITests",
            dependencies: ["SandboxVCR", "SandboxVCRTestSupport"],
            swiftSettings: strictSettings
        ),
    ]
)
