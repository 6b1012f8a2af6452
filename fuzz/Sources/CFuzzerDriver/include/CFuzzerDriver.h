#ifndef PGSPLIT_FUZZ_DRIVER_H
#define PGSPLIT_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (LLVM 11+). SwiftPM renames an executable target's `main`, so each fuzz
/// target has a Swift `main.swift` that hands control to libFuzzer through this entry point.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
