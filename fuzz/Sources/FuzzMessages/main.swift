import CFuzzerDriver
import Glibc

// SwiftPM renames an executable's `main`, so libFuzzer's own `main` cannot be used: start its
// driver here with this target's test function (see Harness.swift).
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) })
