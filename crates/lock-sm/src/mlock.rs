//! MLock actions exchanged between auth and replica MDS ranks (mds spec §2.2).
//!
//! The action's sign says who it is for: negative actions are sent by the auth to replicas,
//! positive ones by a replica to the auth (§8 fact 27). The values are on the wire.

use core::fmt;

/// Which way an MLock action travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the auth rank to its replicas (negative values).
    AuthToReplica,
    /// Sent by a replica to the auth rank (positive values).
    ReplicaToAuth,
}

/// An `MLock.action` value (§2.2).
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockAction {
    /// Go to SYNC (or start MIX->SYNC on the replica); may carry lock data.
    Sync = -1,
    /// Go to MIX (or start SYNC->MIX on the replica); may carry lock data.
    Mix = -2,
    /// Start SYNC->LOCK or MIX->LOCK on the replica.
    Lock = -3,
    /// The auth journaled the scatter data the replica sent.
    LockFlushed = -4,
    /// Replica finished MIX->SYNC; carries its scattered data.
    SyncAck = 1,
    /// Replica finished SYNC->MIX.
    MixAck = 2,
    /// Replica finished ->LOCK (from MIX it carries scattered data).
    LockAck = 3,
    /// Replica wants a wrlock: please go to MIX.
    ReqScatter = 7,
    /// Please leave MIX.
    ReqUnscatter = 8,
    /// Replica has dirty scattered data: please cycle the lock.
    Nudge = 9,
    /// Replica wants a rdlock: please go to SYNC.
    ReqRdlock = 10,
}

impl LockAction {
    /// Every action, auth-to-replica ones first, each group in value order by magnitude.
    pub const ALL: [LockAction; 11] = [
        LockAction::Sync,
        LockAction::Mix,
        LockAction::Lock,
        LockAction::LockFlushed,
        LockAction::SyncAck,
        LockAction::MixAck,
        LockAction::LockAck,
        LockAction::ReqScatter,
        LockAction::ReqUnscatter,
        LockAction::Nudge,
        LockAction::ReqRdlock,
    ];

    /// The wire value.
    pub const fn value(self) -> i32 {
        self as i32
    }

    /// Decodes a wire value; `None` for values no MDS sends (0, 4–6, ...).
    pub fn from_value(v: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.value() == v)
    }

    /// The name Ceph logs for the action.
    pub const fn name(self) -> &'static str {
        match self {
            LockAction::Sync => "sync",
            LockAction::Mix => "mix",
            LockAction::Lock => "lock",
            LockAction::LockFlushed => "lockflushed",
            LockAction::SyncAck => "syncack",
            LockAction::MixAck => "mixack",
            LockAction::LockAck => "lockack",
            LockAction::ReqScatter => "reqscatter",
            LockAction::ReqUnscatter => "requnscatter",
            LockAction::Nudge => "nudge",
            LockAction::ReqRdlock => "reqrdlock",
        }
    }

    /// Parses a log name, case-insensitively.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// Who sends it, from the sign of the value.
    pub const fn direction(self) -> Direction {
        if self.value() < 0 { Direction::AuthToReplica } else { Direction::ReplicaToAuth }
    }
}

impl fmt::Display for LockAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fact_27_values_and_directions() {
        let expect = [
            (LockAction::Sync, -1, "sync"),
            (LockAction::Mix, -2, "mix"),
            (LockAction::Lock, -3, "lock"),
            (LockAction::LockFlushed, -4, "lockflushed"),
            (LockAction::SyncAck, 1, "syncack"),
            (LockAction::MixAck, 2, "mixack"),
            (LockAction::LockAck, 3, "lockack"),
            (LockAction::ReqScatter, 7, "reqscatter"),
            (LockAction::ReqUnscatter, 8, "requnscatter"),
            (LockAction::Nudge, 9, "nudge"),
            (LockAction::ReqRdlock, 10, "reqrdlock"),
        ];
        assert_eq!(expect.len(), LockAction::ALL.len());
        for (a, v, name) in expect {
            assert_eq!(a.value(), v);
            assert_eq!(a.name(), name);
            let dir = if v < 0 { Direction::AuthToReplica } else { Direction::ReplicaToAuth };
            assert_eq!(a.direction(), dir);
        }
    }

    #[test]
    fn round_trips_and_rejects() {
        for a in LockAction::ALL {
            assert_eq!(LockAction::from_value(a.value()), Some(a));
            assert_eq!(LockAction::from_name(a.name()), Some(a));
            assert_eq!(LockAction::from_name(&a.name().to_ascii_uppercase()), Some(a));
            assert_eq!(a.to_string(), a.name());
        }
        for v in [0, 4, 5, 6, 11, -5, i32::MIN, i32::MAX] {
            assert_eq!(LockAction::from_value(v), None);
        }
        assert_eq!(LockAction::from_name("sync "), None);
    }
}
