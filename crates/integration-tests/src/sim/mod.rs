//! The seeded, single-threaded simulator (STYLE.md §3, §4).
//!
//! A run is a pure function of its configuration: one seed drives every choice (which client
//! acts, what it does, which fault strikes) through [`Prng`], the cluster runs on a simulated
//! clock, and tokio runs on one thread with paused time. A failing seed therefore is a complete
//! bug report: rerun it and the same steps happen in the same order.
//!
//! The RBD half ([`rbd`]) runs K RBD clients on the embedded cluster; the MDS half ([`mds`])
//! runs R Locker ranks and M filesystem clients over a seeded transport.

pub mod invariants;
pub mod mds;
pub mod model;
pub mod rbd;
pub mod trace;

use std::fmt;

/// A small seeded generator (splitmix64). The simulator needs reproducibility, not quality, and
/// an in-tree generator cannot change its output under a dependency upgrade.
#[derive(Debug, Clone)]
pub struct Prng {
    state: u64,
}

impl Prng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Prng {
        Prng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (0 when `n` is 0); the slight modulo bias does not matter here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A broken invariant: which one, at which step, and what was seen. Carrying the step lets a
/// replay stop exactly where the run went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The scheduler step after which the check failed.
    pub step: u64,
    /// The invariant's name, with the spec section it encodes.
    pub invariant: &'static str,
    /// What was observed.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {}: {}: {}", self.step, self.invariant, self.detail)
    }
}
