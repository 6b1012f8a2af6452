// swift-tools-version:6.0
import PackageDescription

// Release builds leave out the run-time exclusivity checks on class properties (debug builds, and so
// every test run, keep them): on the per-message path they cost more than the work they guard.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

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
        .target(name: "PostgresWire", dependencies: ["CLibSSL", "ProxyLocks"], swiftSettings: hotPath),
        .target(name: "StatementClassifier", swiftSettings: hotPath),
        .target(name: "SplitConfig", swiftSettings: hotPath),
        // The lock shared state uses (ThreadSanitizer-visible).
        .target(name: "ProxyLocks", swiftSettings: hotPath),
        .target(name: "SplitCore", dependencies: ["PostgresWire", "StatementClassifier", "SplitConfig", "ProxyLocks"], swiftSettings: hotPath),

        // I/O only; knows no SQL.
        .target(name: "DispatchTransport", dependencies: ["CSocketShim", "CLibSSL", "ProxyLocks"], swiftSettings: hotPath),

        .executableTarget(
            name: "pgsplit",
            dependencies: [
                "PostgresWire", "StatementClassifier", "SplitConfig", "SplitCore", "DispatchTransport", "ProxyLocks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: hotPath
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
