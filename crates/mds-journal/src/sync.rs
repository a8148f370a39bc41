//! The sync primitives of the crate's shared-memory hand-offs, in one place (STYLE, tokio's
//! loom facade): `std` normally, `loom`'s model-checked twins when the crate's own tests are
//! built with `RUSTFLAGS="--cfg loom"`. Code that must be model-checked ([`crate::handoff`])
//! imports from here and never from `std::sync` directly, so the checked code is the shipped
//! code. Only the unit tests switch (`cfg(all(test, loom))`, as tokio does): loom's types
//! only work inside `loom::model`, and a dependent crate must never see them.

#[cfg(all(test, loom))]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(all(test, loom)))]
pub(crate) use std::sync::{Mutex, MutexGuard};
