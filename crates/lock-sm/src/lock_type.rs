//! Lock types (`CEPH_LOCK_*`, mds spec §2.3) and which object carries them (§2.4).
//!
//! The numeric value is both the wire identifier and the intra-object acquisition order (lower
//! value locked first on the same object), so the values are the pre-Squid MDS numbering
//! verbatim. The Squid+ quiesce lock is not modelled: inserting it would shift every inode lock
//! value, and the spec only confirms some of the shifted values (§9).

use core::fmt;

use crate::table::Machine;

/// A lock type on a dentry or inode, valued as the pre-Squid MDS numbering (§2.3, §8 fact 29).
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LockType {
    /// Dentry linkage (simplelock).
    Dn = 1,
    /// Dentry version serialization (locallock).
    DVersion = 2,
    /// Inode snaprealm (simplelock).
    ISnap = 16,
    /// Directory layout/quota/pin policy (simplelock).
    IPolicy = 32,
    /// File size/mtime/layout or dir stats (filelock).
    IFile = 64,
    /// Recursive stats (scatterlock).
    INest = 128,
    /// Dirfrag tree (scatterlock).
    IDft = 256,
    /// Mode/uid/gid (simplelock).
    IAuth = 512,
    /// Link count (simplelock).
    ILink = 1024,
    /// Extended attributes (simplelock).
    IXattr = 2048,
    /// Advisory fcntl/flock state (simplelock).
    IFlock = 4096,
    /// Inode version serialization (locallock).
    IVersion = 8192,
}

/// The cache object a lock lives on (§2.4). Dirfrags carry no locks of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A `CDentry`: DN and DVERSION.
    Dentry,
    /// A `CInode`: every `I*` lock.
    Inode,
}

impl ObjectKind {
    /// The object's locks in acquisition (value) order.
    pub const fn lock_types(self) -> &'static [LockType] {
        match self {
            ObjectKind::Dentry => &[LockType::Dn, LockType::DVersion],
            ObjectKind::Inode => &[
                LockType::ISnap,
                LockType::IPolicy,
                LockType::IFile,
                LockType::INest,
                LockType::IDft,
                LockType::IAuth,
                LockType::ILink,
                LockType::IXattr,
                LockType::IFlock,
                LockType::IVersion,
            ],
        }
    }
}

impl LockType {
    /// Every lock type in value (acquisition) order.
    pub const ALL: [LockType; 12] = [
        LockType::Dn,
        LockType::DVersion,
        LockType::ISnap,
        LockType::IPolicy,
        LockType::IFile,
        LockType::INest,
        LockType::IDft,
        LockType::IAuth,
        LockType::ILink,
        LockType::IXattr,
        LockType::IFlock,
        LockType::IVersion,
    ];

    /// `CEPH_CAP_LOCKS`: the inode locks whose state bounds client caps (§2.3).
    pub const CAP_LOCKS: u16 = LockType::IFile.value()
        | LockType::IAuth.value()
        | LockType::ILink.value()
        | LockType::IXattr.value();

    /// The `CEPH_LOCK_*` value, carried in MLock and used for ordering.
    pub const fn value(self) -> u16 {
        self as u16
    }

    /// Decodes a wire value; `None` for anything that is not exactly one known type.
    pub const fn from_value(v: u16) -> Option<LockType> {
        let mut i = 0;
        while i < Self::ALL.len() {
            if Self::ALL[i] as u16 == v {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// The name Ceph prints in logs ("ifile"), also our CLI spelling.
    pub const fn name(self) -> &'static str {
        match self {
            LockType::Dn => "dn",
            LockType::DVersion => "dversion",
            LockType::ISnap => "isnap",
            LockType::IPolicy => "ipolicy",
            LockType::IFile => "ifile",
            LockType::INest => "inest",
            LockType::IDft => "idft",
            LockType::IAuth => "iauth",
            LockType::ILink => "ilink",
            LockType::IXattr => "ixattr",
            LockType::IFlock => "iflock",
            LockType::IVersion => "iversion",
        }
    }

    /// Parses a log name, case-insensitively.
    pub fn from_name(s: &str) -> Option<LockType> {
        Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(s))
    }

    /// Which state table governs this lock (§2.3 "Class / state table").
    pub const fn machine(self) -> Machine {
        match self {
            LockType::Dn
            | LockType::ISnap
            | LockType::IPolicy
            | LockType::IAuth
            | LockType::ILink
            | LockType::IXattr
            | LockType::IFlock => Machine::Simple,
            LockType::INest | LockType::IDft => Machine::Scatter,
            LockType::IFile => Machine::File,
            LockType::DVersion | LockType::IVersion => Machine::Local,
        }
    }

    /// Where this lock's generic cap bits sit in a client's absolute caps (§8 fact 31). Zero
    /// for locks that bear no client caps.
    pub const fn cap_shift(self) -> u32 {
        match self {
            LockType::IAuth => crate::caps::SAUTH,
            LockType::ILink => crate::caps::SLINK,
            LockType::IXattr => crate::caps::SXATTR,
            LockType::IFile => crate::caps::SFILE,
            _ => 0,
        }
    }

    /// How many generic bits the lock owns in the absolute caps: all eight for IFILE, `sx`
    /// for the rest (§8 fact 31).
    pub const fn cap_mask(self) -> u32 {
        match self {
            LockType::IFile => 0xff,
            _ => 0x3,
        }
    }

    /// Whether client caps depend on this lock's state (`CEPH_CAP_LOCKS`); the others have
    /// cap shift 0 and their table cap columns never reach a client.
    pub const fn is_cap_bearing(self) -> bool {
        self.value() & Self::CAP_LOCKS != 0
    }

    /// First bit of this lock's 4-bit group in an object's waiter mask: 8 + 4k (§8 fact 32).
    pub const fn wait_shift(self) -> u32 {
        let k = match self {
            LockType::Dn => 0,
            LockType::DVersion => 1,
            LockType::IAuth => 2,
            LockType::ILink => 3,
            LockType::IDft => 4,
            LockType::IFile => 5,
            LockType::IVersion => 6,
            LockType::IXattr => 7,
            LockType::ISnap => 8,
            LockType::INest => 9,
            LockType::IFlock => 10,
            LockType::IPolicy => 11,
        };
        8 + 4 * k
    }

    /// Generic bits of the xlocking client that count in the xlocker bucket: `sxcr` for IFILE,
    /// `sx` otherwise (§1.7, §8 fact 33).
    pub const fn xlocker_mask(self) -> u32 {
        match self {
            LockType::IFile => 0xf,
            _ => 0x3,
        }
    }

    /// The object this lock lives on (§2.4).
    pub const fn object_kind(self) -> ObjectKind {
        match self {
            LockType::Dn | LockType::DVersion => ObjectKind::Dentry,
            _ => ObjectKind::Inode,
        }
    }
}

impl fmt::Display for LockType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fact_29_pre_squid_values() {
        let expect: [(LockType, u16); 12] = [
            (LockType::Dn, 1),
            (LockType::DVersion, 2),
            (LockType::ISnap, 16),
            (LockType::IPolicy, 32),
            (LockType::IFile, 64),
            (LockType::INest, 128),
            (LockType::IDft, 256),
            (LockType::IAuth, 512),
            (LockType::ILink, 1024),
            (LockType::IXattr, 2048),
            (LockType::IFlock, 4096),
            (LockType::IVersion, 8192),
        ];
        for (t, v) in expect {
            assert_eq!(t.value(), v);
        }
    }

    #[test]
    fn values_and_names_round_trip() {
        for w in LockType::ALL.windows(2) {
            assert!(w[0].value() < w[1].value(), "ALL must be in value order");
        }
        for t in LockType::ALL {
            assert!(t.value().is_power_of_two());
            assert_eq!(LockType::from_value(t.value()), Some(t));
            assert_eq!(LockType::from_name(t.name()), Some(t));
            assert_eq!(LockType::from_name(&t.name().to_ascii_uppercase()), Some(t));
            assert_eq!(t.to_string(), t.name());
        }
        for v in [0u16, 3, 4, 8, 17, 16384, u16::MAX] {
            assert_eq!(LockType::from_value(v), None);
        }
        assert_eq!(LockType::from_name("iquiesce"), None);
    }

    #[test]
    fn fact_31_shifts_and_masks() {
        for t in LockType::ALL {
            let (shift, mask) = match t {
                LockType::IAuth => (2, 3),
                LockType::ILink => (4, 3),
                LockType::IXattr => (6, 3),
                LockType::IFile => (8, 0xff),
                _ => (0, 3),
            };
            assert_eq!((t.cap_shift(), t.cap_mask()), (shift, mask), "{t}");
            assert_eq!(t.is_cap_bearing(), shift != 0, "{t}");
        }
    }

    #[test]
    fn fact_32_wait_shifts_are_distinct_nibbles() {
        assert_eq!(LockType::Dn.wait_shift(), 8);
        assert_eq!(LockType::IFile.wait_shift(), 28);
        assert_eq!(LockType::IPolicy.wait_shift(), 52);
        let mut seen = 0u64;
        for t in LockType::ALL {
            let s = t.wait_shift();
            assert_eq!((s - 8) % 4, 0);
            let bit = 1u64 << ((s - 8) / 4);
            assert_eq!(seen & bit, 0, "{t} reuses a wait nibble");
            seen |= bit;
        }
    }

    #[test]
    fn fact_33_xlocker_mask() {
        assert_eq!(LockType::IFile.xlocker_mask(), 0xf);
        assert_eq!(LockType::IAuth.xlocker_mask(), 0x3);
        assert_eq!(LockType::Dn.xlocker_mask(), 0x3);
    }

    #[test]
    fn section_2_3_classes_and_section_2_4_objects() {
        assert_eq!(LockType::IFile.machine(), Machine::File);
        assert_eq!(LockType::INest.machine(), Machine::Scatter);
        assert_eq!(LockType::IDft.machine(), Machine::Scatter);
        assert_eq!(LockType::DVersion.machine(), Machine::Local);
        assert_eq!(LockType::IVersion.machine(), Machine::Local);
        assert_eq!(LockType::Dn.machine(), Machine::Simple);
        let mut all: Vec<LockType> = ObjectKind::Dentry.lock_types().to_vec();
        all.extend_from_slice(ObjectKind::Inode.lock_types());
        assert_eq!(all, LockType::ALL.to_vec());
        for kind in [ObjectKind::Dentry, ObjectKind::Inode] {
            for t in kind.lock_types() {
                assert_eq!(t.object_kind(), kind);
            }
        }
    }
}
