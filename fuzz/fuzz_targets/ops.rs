//! Fuzz target `ops`: see `ballast_fuzz::checks::ops` and `docs/fuzzing.md`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| ballast_fuzz::checks::ops(data));
