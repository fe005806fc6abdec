//! The deterministic simulator for Ballast.
//!
//! This crate is a placeholder so that the workspace layout is in place: the seeded
//! simulator (fault model, workload, oracle, seed sweeps) is built on top of the storage
//! seam in `ballast_log::storage`. Until it lands, `ballast_log::storage::MemStorage`
//! with its `crash` operation is what the core's crash tests use.

pub use ballast_log;
