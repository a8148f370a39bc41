//! The MDS journal (not yet implemented).
//!
//! In the MDS a mutation is journaled before it is applied and before its write locks are
//! released: the journal is what makes an acknowledged metadata change survive a crash. This
//! crate will hold the log events with Ceph's type ids and their versioned encoding, the
//! journaler that stripes one byte stream over `rados-store` objects with group commit,
//! log segments with trimming and expiry, replay, and inspection for `cephlock journal`.
//!
//! Nothing here works yet; see the `mds-journal` issue. It deliberately exports nothing, so
//! no caller can mistake it for a working journal.
