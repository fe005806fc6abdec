//! Fuzz targets for Ballast. The checks live in [`checks`], which depends only on the library,
//! `arbitrary` and `std`, so that `tests/fuzz_replay.rs` replays the corpus on stable through
//! the same code.

pub mod checks;
