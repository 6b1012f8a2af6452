// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "pgsplit",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "pgsplit", targets: ["pgsplit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // System libraries. OpenSSL gives TLS and the crypto SCRAM/md5 need; libpq is for tests and bench only.
        .systemLibrary(name: "CLibSSL", path: "Sources/CLibSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CLibPQ", path: "Sources/CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // Socket calls Glibc's Swift module lacks (accept4, epoll).
        .target(name: "CSocketShim", path: "Sources/CSocketShim"),

        // Pure modules: no I/O.
        .target(name: "PostgresWire", dependencies: ["CLibSSL"]),
        .target(name: "StatementClassifier"),
        .target(name: "SplitConfig"),
        // The lock shared state uses (ThreadSanitizer-visible).
        .target(name: "ProxyLocks"),
        .target(name: "SplitCore", dependencies: ["PostgresWire", "StatementClassifier", "SplitConfig", "ProxyLocks"]),

        // I/O only; knows no SQL.
        .target(name: "DispatchTransport", dependencies: ["CSocketShim", "CLibSSL", "ProxyLocks"]),

        .executableTarget(
            name: "pgsplit",
            dependencies: [
                "PostgresWire", "StatementClassifier", "SplitConfig", "SplitCore", "DispatchTransport", "ProxyLocks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(name: "PostgresWireTests", dependencies: ["PostgresWire"]),
        .testTarget(name: "StatementClassifierTests", dependencies: ["StatementClassifier"]),
        .testTarget(name: "SplitConfigTests", dependencies: ["SplitConfig"]),
        .testTarget(name: "SplitCoreTests", dependencies: ["SplitCore", "PostgresWire", "StatementClassifier"]),
        .testTarget(name: "DispatchTransportTests", dependencies: ["DispatchTransport"]),
        .testTarget(name: "IntegrationTests", dependencies: ["CLibPQ", "PostgresWire"]),
    ],
    swiftLanguageModes: [.v6]
)
