//! Fuzz target `recover`: see `ballast_fuzz::checks::recover` and `docs/fuzzing.md`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ballast_fuzz::checks::recover(data));
