//! librbd's exclusive lock (not yet implemented).
//!
//! This crate will hold ManagedLock (the action queue and transitions, deciding with
//! `lock-sm`'s ManagedLock table), ExclusiveLock's acquire/release hooks and policies, and the
//! ImageWatcher with every notify op encoded byte-exactly as librbd 16.2 does, all over
//! `rados-store` so that it runs on the embedded backend and on real Ceph alike.
//!
//! Nothing here works yet; see the `rbd-exclusive-lock` issue. It deliberately exports nothing.
