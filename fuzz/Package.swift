// swift-tools-version:6.0
// libFuzzer harness for pgsplit's pure parsers. A separate package so the main build never sees the
// sanitizer flags. The main package exposes no library products, so the modules under test are
// compiled here from symlinks (Sources/PostgresWire, Sources/StatementClassifier, Sources/ProxyLocks,
// Sources/CLibSSL point into ../Sources). Build and run with `fuzz/run`; see README.md.
import PackageDescription

/// Every module is instrumented for coverage (fuzzer) and checked by AddressSanitizer.
let instrument: [SwiftSetting] = [.unsafeFlags(["-sanitize=fuzzer,address"])]
/// The module under test is also built for `@testable import` (fixed SCRAM nonces in the harness).
let instrumentTestable: [SwiftSetting] = [.unsafeFlags(["-sanitize=fuzzer,address", "-enable-testing"])]
/// Fuzz targets: a `main.swift` that starts libFuzzer's driver with the target's test function.
let fuzzTarget: [SwiftSetting] = [.unsafeFlags(["-sanitize=fuzzer,address"])]
let fuzzLink: [LinkerSetting] = [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])]

let package = Package(
    name: "pgsplit-fuzz",
    targets: [
        .systemLibrary(name: "CLibSSL", path: "Sources/CLibSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "ProxyLocks", swiftSettings: instrument),
        .target(name: "PostgresWire", dependencies: ["CLibSSL", "ProxyLocks"], swiftSettings: instrumentTestable),
        .target(name: "StatementClassifier", swiftSettings: instrument),
        .target(name: "CFuzzerDriver"),

        .executableTarget(name: "FuzzStartup", dependencies: ["PostgresWire", "CFuzzerDriver"],
                          swiftSettings: fuzzTarget, linkerSettings: fuzzLink),
        .executableTarget(name: "FuzzMessages", dependencies: ["PostgresWire", "CFuzzerDriver"],
                          swiftSettings: fuzzTarget, linkerSettings: fuzzLink),
        .executableTarget(name: "FuzzClassifier", dependencies: ["StatementClassifier", "CFuzzerDriver"],
                          swiftSettings: fuzzTarget, linkerSettings: fuzzLink),
    ],
    swiftLanguageModes: [.v6]
)
