//! A rank fails and restarts (mds §6.6): replay of its durable journal through mds-journal's
//! encoding, resolve of subtree authority, rejoin, and clients re-sending what had no safe
//! reply.

mod t10_crash_with_unsafe_entries;
