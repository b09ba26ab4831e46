#ifndef CORTEX_CLIBFUZZER_H
#define CORTEX_CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, linked by -sanitize=fuzzer): parses libFuzzer's command-line
/// options from argc/argv and fuzzes `callback`. Called from main.swift because SwiftPM renames an
/// executable's `main`, so libFuzzer's own `main` cannot be the entry point.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
