// The entry point: libFuzzer's driver with the target CORTEX_FUZZ_TARGET names (FuzzTargets.swift).
// libFuzzer's own `main` is not used because SwiftPM renames an executable's `main` symbol when it
// links (for executable testing), which leaves a libFuzzer `main` with no `<module>_main` to alias.
import CLibFuzzer
import Foundation

_ = selected  // an unknown target name fails here, before libFuzzer starts
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { bytes, count in
    fuzzOne(bytes, count)
})
