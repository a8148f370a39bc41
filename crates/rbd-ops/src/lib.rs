//! RBD images and maintenance operations (not yet implemented).
//!
//! This crate will hold format-2 images over the `rbd` object class, image handles, I/O gated
//! by the exclusive lock, and maintenance operations (snapshot create, resize, ...) run locally
//! by the lock owner or forwarded to it over watch/notify.
//!
//! Nothing here works yet; see the `rbd-ops` issue. It deliberately exports nothing.
