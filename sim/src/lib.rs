//! The deterministic simulator for Ballast.
//!
//! One seed is one world: a ChaCha PRNG seeded from it draws the log's configuration, the fault
//! rates and the workload (swarm testing), drives the real `Log` against [`SimStorage`] on
//! simulated time, injects crashes and faults, and checks every recovery against a plain model
//! of the log (the oracle). The same seed gives the same run, bit for bit: [`Outcome::digest`]
//! proves it. `docs/simulator.md` describes the fault model and how to reproduce a seed.

pub mod storage;
pub mod swarm;
pub mod world;

pub use storage::{FaultClass, SimDisk, SimStorage, FAULT_CLASSES};
pub use swarm::Swarm;
pub use world::{run, Failure, Outcome};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A running FNV-1a digest of the trace: every storage operation, completion and workload
/// result is folded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest(pub u64);

impl Default for Digest {
    fn default() -> Digest {
        Digest(0xCBF2_9CE4_8422_2325)
    }
}

impl Digest {
    /// Folds two words into the digest.
    pub fn add(&mut self, a: u64, b: u64) {
        for byte in a.to_le_bytes().into_iter().chain(b.to_le_bytes()) {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
}

/// The generators of one seed, split in a fixed order so that a change in how one part uses
/// its randomness does not shift the others.
pub struct Seeds {
    /// Draws the swarm configuration.
    pub swarm: ChaCha8Rng,
    /// Drives the simulated disk: latencies, faults, crash fates.
    pub storage: ChaCha8Rng,
    /// Drives the workload.
    pub workload: ChaCha8Rng,
    /// Chooses crash moments.
    pub crash: ChaCha8Rng,
    /// Draws the tail cache's limits and drives the simulated tail readers: a stream of its
    /// own, so that they leave every other draw of a seed as it was.
    pub readers: ChaCha8Rng,
}

impl Seeds {
    /// Splits a seed.
    pub fn split(seed: u64) -> Seeds {
        let mut root = ChaCha8Rng::seed_from_u64(seed);
        let mut next = || ChaCha8Rng::seed_from_u64(root.next_u64());
        Seeds {
            swarm: next(),
            storage: next(),
            workload: next(),
            crash: next(),
            readers: next(),
        }
    }
}

thread_local! {
    static PANIC_MESSAGE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs a panic hook that keeps the message and location of a panic for the failure report
/// instead of printing it: a sweep reports each failing seed once, with its reproduction.
pub fn panic_hook_install() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|location| format!(" at {}:{}", location.file(), location.line()))
            .unwrap_or_default();
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_default();
        if std::env::var_os("BALLAST_SIM_TRACE").is_some() {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
        PANIC_MESSAGE.with(|slot| *slot.borrow_mut() = Some(format!("{message}{location}")));
    }));
}

/// Takes the message the panic hook kept, if any.
pub fn panic_message_take() -> Option<String> {
    PANIC_MESSAGE.with(|slot| slot.borrow_mut().take())
}

/// Parses a seed: a decimal `u64`, or a 40-hex-digit git commit id (its first 16 hex digits).
pub fn seed_parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.len() == 40 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        return u64::from_str_radix(&text[..16], 16).map_err(|error| error.to_string());
    }
    text.parse::<u64>()
        .map_err(|_| format!("`{text}` is neither a u64 nor a 40-hex commit id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_from_numbers_and_commits() {
        assert_eq!(seed_parse("42"), Ok(42));
        assert_eq!(
            seed_parse("0123456789abcdef0123456789abcdef01234567"),
            Ok(0x0123_4567_89ab_cdef)
        );
        assert!(seed_parse("xyz").is_err());
    }
}
