//! The MDS Locker (not yet implemented).
//!
//! This crate will hold the metadata cache (inodes, dentries, dirfrags with their locks), the
//! Locker as a sans-I/O state machine (events in, effects out) driven by `lock-sm`'s tables,
//! client capabilities, path locking for each metadata operation, journal-before-unlock with
//! early and safe replies, and later the auth/replica lock protocol between ranks.
//!
//! Nothing here works yet; see the single-rank and multi-rank `mds-locker` issues. It
//! deliberately exports nothing.
