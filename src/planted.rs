//! Bugs planted on purpose, to prove that the simulator and the tests catch them.
//!
//! Every check must have teeth: delete it, and some test, seed or fuzz input must fail. Each
//! bug listed in `docs/simulator.md` ("Teeth") is compiled in only with
//! `RUSTFLAGS='--cfg ballast_planted'` and switched on at run time with
//! `BALLAST_PLANTED=<name>`; `.ci/planted` builds once with it and checks that every planted
//! bug is caught. A normal build has none of it: [`active`] is a constant `false`.

/// Whether the planted bug `name` is switched on.
#[cfg(ballast_planted)]
pub fn active(name: &str) -> bool {
    static ACTIVE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let active = ACTIVE.get_or_init(|| std::env::var("BALLAST_PLANTED").ok());
    active.as_deref() == Some(name)
}

/// Whether the planted bug `name` is switched on: never, in a normal build.
#[cfg(not(ballast_planted))]
#[inline(always)]
pub fn active(_name: &str) -> bool {
    false
}
