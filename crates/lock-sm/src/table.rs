//! The four MDS lock state tables as `const` data (mds spec §1.1–§1.6).
//!
//! Ceph decides every lock question (may this rank rdlock? which caps may a client keep? where
//! is this transition heading?) by indexing a per-class table with the state id. Keeping the
//! tables as plain data, one spec row per source line, means they can be audited against the
//! spec cell by cell and every predicate in this crate is a lookup, not hand-written logic.
//!
//! A state that is absent from a class's table gets an all-zero row: formally stable, nothing
//! permitted (§1.1, §8 fact 25). `Machine::has_row` still tells such states apart from listed
//! rows, because a listed row may legitimately be all-zero apart from `next`.

use core::fmt;

use crate::state::LockState;

/// A permission column value (§1.1 "Condition values", §8 fact 28).
///
/// The discriminants are Ceph's numeric values; 4 ("forward to auth") is historical and unused,
/// so it has no variant.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Perm {
    /// 0: never permitted.
    Never = 0,
    /// 1: permitted on the auth and on replicas.
    Any = 1,
    /// 2: permitted only on the rank that is auth for the parent object.
    Auth = 2,
    /// 3: permitted only for the xlocking client (and, for wrlocks, the loner client).
    Xcl = 3,
    /// 5: never granted locally; a replica must ask the auth to change state.
    Req = 5,
}

impl Perm {
    /// Ceph's numeric condition value.
    pub const fn value(self) -> u8 {
        self as u8
    }

    /// The symbol the spec tables use ("0", "ANY", "AUTH", "XCL", "REQ"), so exported tables
    /// read exactly like the spec.
    pub const fn symbol(self) -> &'static str {
        match self {
            Perm::Never => "0",
            Perm::Any => "ANY",
            Perm::Auth => "AUTH",
            Perm::Xcl => "XCL",
            Perm::Req => "REQ",
        }
    }

    /// Parses a spec symbol (case-insensitive); "never" is accepted as a readable alias of "0".
    pub fn from_symbol(s: &str) -> Option<Perm> {
        [Perm::Never, Perm::Any, Perm::Auth, Perm::Xcl, Perm::Req]
            .into_iter()
            .find(|p| p.symbol().eq_ignore_ascii_case(s))
            .or_else(|| s.eq_ignore_ascii_case("never").then_some(Perm::Never))
    }
}

impl fmt::Display for Perm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// One row of a state table (§1.1). Cap columns hold generic (unshifted) cap bits; the lock type
/// decides where they land in a client's absolute caps (`caps::shift_caps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateRow {
    /// Stable state this transitional state heads to; `Undef` means the row is itself stable.
    pub next: LockState,
    /// Loner mode: the single exclusive client may hold caps others may not.
    pub loner: bool,
    /// State a replica's copy is put into while the auth is in this state.
    pub replica_state: LockState,
    /// May the current (journaled) value be read without a rdlock.
    pub can_read: Perm,
    /// May the projected (not yet journaled) value be read.
    pub can_read_projected: Perm,
    /// May a rdlock be granted.
    pub can_rdlock: Perm,
    /// May a shared wrlock be granted.
    pub can_wrlock: Perm,
    /// May an internal writer force a wrlock while the lock transitions.
    pub can_force_wrlock: Perm,
    /// May a client dentry lease be issued.
    pub can_lease: Perm,
    /// May an xlock be granted (or the xlock acquisition proceed).
    pub can_xlock: Perm,
    /// Generic caps every client may hold.
    pub caps: u32,
    /// Generic caps additionally allowed to the loner client.
    pub loner_caps: u32,
    /// Generic caps additionally allowed to the xlocking client.
    pub xlocker_caps: u32,
    /// Generic caps clients of a replica MDS may hold.
    pub replica_caps: u32,
}

impl StateRow {
    /// The row of a state a class does not use: stable, nothing permitted, no caps (§8 fact 25).
    pub const ZERO: StateRow = StateRow {
        next: LockState::Undef,
        loner: false,
        replica_state: LockState::Undef,
        can_read: Perm::Never,
        can_read_projected: Perm::Never,
        can_rdlock: Perm::Never,
        can_wrlock: Perm::Never,
        can_force_wrlock: Perm::Never,
        can_lease: Perm::Never,
        can_xlock: Perm::Never,
        caps: 0,
        loner_caps: 0,
        xlocker_caps: 0,
        replica_caps: 0,
    };

    /// Stable means "not heading anywhere" (`next == Undef`), exactly Ceph's `is_stable()`.
    pub const fn is_stable(&self) -> bool {
        matches!(self.next, LockState::Undef)
    }
}

/// The four lock classes. Declaration order is the order tables are exported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Machine {
    /// simplelock (§1.3): DN, IAUTH, ILINK, IXATTR, ISNAP, IFLOCK, IPOLICY.
    Simple,
    /// scatterlock (§1.4): IDFT, INEST.
    Scatter,
    /// filelock (§1.5): IFILE.
    File,
    /// locallock (§1.6): DVERSION, IVERSION.
    Local,
}

impl Machine {
    /// All classes in export order.
    pub const ALL: [Machine; 4] = [Machine::Simple, Machine::Scatter, Machine::File, Machine::Local];

    /// Ceph's table name, as used in the spec headings and exported files.
    pub const fn name(self) -> &'static str {
        match self {
            Machine::Simple => "simplelock",
            Machine::Scatter => "scatterlock",
            Machine::File => "filelock",
            Machine::Local => "locallock",
        }
    }

    /// Accepts the table name ("filelock") or its short form ("file"), case-insensitively, so
    /// the CLI can take either.
    pub fn from_name(s: &str) -> Option<Machine> {
        Self::ALL.into_iter().find(|m| {
            let full = m.name();
            let short = &full[..full.len() - "lock".len()];
            full.eq_ignore_ascii_case(s) || short.eq_ignore_ascii_case(s)
        })
    }

    /// The class's machine-level fields and rows.
    pub const fn def(self) -> &'static MachineDef {
        match self {
            Machine::Simple => &SIMPLELOCK,
            Machine::Scatter => &SCATTERLOCK,
            Machine::File => &FILELOCK,
            Machine::Local => &LOCALLOCK,
        }
    }

    /// The row for `s`; all-zero when the class has no row for it.
    pub const fn row(self, s: LockState) -> &'static StateRow {
        &self.def().rows[s as usize]
    }

    /// Whether the spec table (§1.3–§1.6) lists `s` for this class. Tracked explicitly rather
    /// than inferred from the row contents.
    pub const fn has_row(self, s: LockState) -> bool {
        self.def().listed & (1u64 << (s as u8)) != 0
    }

    /// The listed states, in id order.
    pub fn states_with_rows(self) -> impl Iterator<Item = LockState> {
        LockState::ALL.into_iter().filter(move |s| self.has_row(*s))
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A whole lock class: the machine-level fields of §1.2 plus its state table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineDef {
    /// Which class this is.
    pub machine: Machine,
    /// Generic caps a client could ever get from this lock on the auth (bounds "allowed ever").
    pub allowed_ever_auth: u32,
    /// Generic caps a client could ever get through a replica (what a replica forwards as wanted).
    pub allowed_ever_replica: u32,
    /// Caps that need care while the lock is wrlocked (reported only while wrlocked).
    pub careful: u32,
    /// Whether a non-auth rank may xlock by asking the auth (simplelock only, §8 fact 22).
    pub can_remote_xlock: bool,
    /// The state table indexed by state id; unlisted states hold `StateRow::ZERO`.
    pub rows: [StateRow; LockState::COUNT],
    /// Bit `id` set for every state the spec table lists.
    listed: u64,
}

impl MachineDef {
    /// The `allowed_ever` bound for the side we are on.
    pub const fn allowed_ever(&self, is_auth: bool) -> u32 {
        if is_auth { self.allowed_ever_auth } else { self.allowed_ever_replica }
    }

    /// Ceph reports `careful` caps only while the lock has wrlocks (§1.2).
    pub const fn careful_caps(&self, has_wrlocks: bool) -> u32 {
        if has_wrlocks { self.careful } else { 0 }
    }
}

// ---------------------------------------------------------------------------------------------
// Row builder. Positional arguments follow the spec's column order so each table line can be
// compared with the spec line by eye.

const STABLE: LockState = LockState::Undef;
const Y: bool = true;
const N: bool = false;
const O: Perm = Perm::Never;
const ANY: Perm = Perm::Any;
const AUTH: Perm = Perm::Auth;
const XCL: Perm = Perm::Xcl;
const REQ: Perm = Perm::Req;

/// One spec row in spec column order: state, next, loner, replica state, read, read_proj,
/// rdlock, wrlock, force_wrlock, lease, xlock, caps any, caps loner, caps xlocker, caps replica.
#[allow(clippy::too_many_arguments)] // one argument per spec column keeps rows auditable
const fn row(
    state: LockState,
    next: LockState,
    loner: bool,
    replica_state: LockState,
    can_read: Perm,
    can_read_projected: Perm,
    can_rdlock: Perm,
    can_wrlock: Perm,
    can_force_wrlock: Perm,
    can_lease: Perm,
    can_xlock: Perm,
    caps: u32,
    loner_caps: u32,
    xlocker_caps: u32,
    replica_caps: u32,
) -> (LockState, StateRow) {
    (
        state,
        StateRow {
            next,
            loner,
            replica_state,
            can_read,
            can_read_projected,
            can_rdlock,
            can_wrlock,
            can_force_wrlock,
            can_lease,
            can_xlock,
            caps,
            loner_caps,
            xlocker_caps,
            replica_caps,
        },
    )
}

/// Places listed rows at their ids. Evaluated at compile time; a state listed twice is a build
/// error, not a runtime one.
const fn build(
    machine: Machine,
    allowed_ever_auth: u32,
    allowed_ever_replica: u32,
    careful: u32,
    can_remote_xlock: bool,
    entries: &[(LockState, StateRow)],
) -> MachineDef {
    let mut rows = [StateRow::ZERO; LockState::COUNT];
    let mut listed = 0u64;
    let mut i = 0;
    while i < entries.len() {
        let (state, r) = entries[i];
        let bit = 1u64 << (state as u8);
        assert!(listed & bit == 0, "state listed twice in a table");
        listed |= bit;
        rows[state as usize] = r;
        i += 1;
    }
    MachineDef { machine, allowed_ever_auth, allowed_ever_replica, careful, can_remote_xlock, rows, listed }
}

use LockState as S;

// §1.3 simplelock.
#[rustfmt::skip]
const SIMPLE_ROWS: [(LockState, StateRow); 15] = [
    //  state            next          loner replica        read  rproj rdlk  wrlk  fwrlk lease xlock any loner xlkr repl
    row(S::Sync,        STABLE,       N,    S::Sync,       ANY,  O,    ANY,  O,    O,    ANY,  O,    1,  0,    0,   1),
    row(S::Lock,        STABLE,       N,    S::Lock,       AUTH, O,    REQ,  O,    O,    O,    O,    0,  0,    0,   0),
    row(S::PreXlock,    S::Lock,      N,    S::Lock,       O,    XCL,  O,    O,    O,    O,    ANY,  0,  0,    0,   0),
    row(S::Xlock,       S::Sync,      N,    S::Lock,       O,    XCL,  O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::XlockDone,   S::Sync,      N,    S::Lock,       XCL,  XCL,  XCL,  O,    O,    XCL,  O,    0,  0,    1,   0),
    row(S::LockXlock,   S::PreXlock,  N,    S::Lock,       O,    XCL,  O,    O,    O,    O,    XCL,  0,  0,    0,   0),
    row(S::SyncLock,    S::Lock,      N,    S::Lock,       ANY,  O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::LockSync,    S::Sync,      N,    S::Lock,       AUTH, XCL,  XCL,  O,    O,    XCL,  O,    0,  0,    0,   0),
    row(S::Excl,        STABLE,       Y,    S::Lock,       O,    O,    REQ,  XCL,  O,    O,    O,    0,  3,    0,   0),
    row(S::ExclSync,    S::Sync,      Y,    S::Lock,       O,    O,    O,    O,    XCL,  O,    O,    0,  1,    0,   0),
    row(S::ExclLock,    S::Lock,      N,    S::Lock,       O,    O,    O,    O,    XCL,  O,    O,    0,  0,    0,   0),
    row(S::SyncExcl,    S::Excl,      Y,    S::Lock,       ANY,  O,    O,    O,    O,    O,    O,    0,  1,    0,   0),
    row(S::LockExcl,    S::Excl,      N,    S::Lock,       AUTH, O,    O,    O,    O,    O,    O,    1,  0,    0,   0),
    row(S::RemoteXlock, S::Lock,      N,    S::Lock,       O,    O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::SnapSync,    S::Sync,      N,    S::Lock,       O,    O,    O,    O,    AUTH, O,    O,    0,  0,    0,   0),
];

// §1.4 scatterlock.
#[rustfmt::skip]
const SCATTER_ROWS: [(LockState, StateRow); 16] = [
    //  state            next          loner replica        read  rproj rdlk  wrlk  fwrlk lease xlock any loner xlkr repl
    row(S::Sync,        STABLE,       N,    S::Sync,       ANY,  O,    ANY,  O,    O,    ANY,  O,    1,  0,    0,   1),
    row(S::Lock,        STABLE,       N,    S::Lock,       AUTH, O,    REQ,  AUTH, O,    O,    ANY,  0,  0,    0,   0),
    row(S::SyncLock,    S::Lock,      N,    S::Lock,       ANY,  O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::LockSync,    S::Sync,      N,    S::Lock,       AUTH, O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::Mix,         STABLE,       N,    S::Mix,        O,    O,    REQ,  ANY,  O,    O,    O,    0,  0,    0,   0),
    row(S::SyncMix,     S::Mix,       N,    S::SyncMix2,   ANY,  O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::SyncMix2,    S::Mix,       N,    S::Undef,      O,    O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::MixSync,     S::Sync,      N,    S::Lock,       O,    O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::MixLock,     S::Lock,      N,    S::Mix,        O,    O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::MixLock2,    S::Lock,      N,    S::Lock,       O,    O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::Tsyn,        STABLE,       N,    S::Lock,       AUTH, O,    AUTH, O,    O,    O,    O,    0,  0,    0,   0),
    row(S::TsynLock,    S::Lock,      N,    S::Lock,       AUTH, O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::TsynMix,     S::Mix,       N,    S::Lock,       O,    O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::LockTsyn,    S::Tsyn,      N,    S::Lock,       O,    O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::MixTsyn,     S::Tsyn,      N,    S::Lock,       O,    O,    O,    O,    O,    O,    O,    0,  0,    0,   0),
    row(S::SnapSync,    S::Sync,      N,    S::Lock,       O,    O,    O,    O,    AUTH, O,    O,    0,  0,    0,   0),
];

// §1.5 filelock.
#[rustfmt::skip]
const FILE_ROWS: [(LockState, StateRow); 32] = [
    //  state            next          loner replica        read  rproj rdlk  wrlk  fwrlk lease xlock any  loner xlkr repl
    row(S::Sync,        STABLE,       N,    S::Sync,       ANY,  O,    ANY,  O,    O,    ANY,  O,    141, 0,    0,   13),
    row(S::Lock,        STABLE,       N,    S::Lock,       AUTH, O,    REQ,  AUTH, O,    O,    O,    36,  0,    0,   0),
    row(S::PreXlock,    S::Lock,      N,    S::Lock,       O,    XCL,  O,    O,    O,    O,    ANY,  36,  0,    0,   0),
    row(S::Xlock,       S::Lock,      N,    S::Lock,       O,    XCL,  O,    O,    O,    O,    O,    36,  0,    0,   0),
    row(S::XlockDone,   S::Lock,      N,    S::Lock,       XCL,  XCL,  XCL,  O,    O,    XCL,  O,    36,  0,    1,   0),
    row(S::XlockSnap,   S::Lock,      N,    S::Lock,       O,    XCL,  O,    O,    O,    O,    O,    4,   0,    0,   0),
    row(S::LockXlock,   S::PreXlock,  N,    S::Lock,       O,    XCL,  O,    O,    O,    O,    XCL,  36,  0,    0,   0),
    row(S::SyncLock,    S::Lock,      N,    S::Lock,       ANY,  O,    REQ,  O,    O,    O,    O,    4,   0,    0,   0),
    row(S::LockSync,    S::Sync,      N,    S::Lock,       AUTH, O,    O,    O,    O,    O,    O,    4,   0,    0,   0),
    row(S::Excl,        STABLE,       Y,    S::Lock,       O,    O,    XCL,  XCL,  O,    O,    O,    0,   63,   0,   0),
    row(S::ExclSync,    S::Sync,      Y,    S::Lock,       O,    O,    O,    O,    XCL,  O,    O,    0,   13,   0,   0),
    row(S::ExclLock,    S::Lock,      N,    S::Lock,       O,    O,    O,    O,    XCL,  O,    O,    36,  0,    0,   0),
    row(S::SyncExcl,    S::Excl,      Y,    S::Lock,       ANY,  O,    O,    O,    O,    O,    O,    0,   13,   0,   0),
    row(S::LockExcl,    S::Excl,      Y,    S::Lock,       AUTH, O,    O,    O,    O,    O,    O,    0,   36,   0,   0),
    row(S::Mix,         STABLE,       N,    S::Mix,        O,    O,    REQ,  ANY,  O,    O,    O,    152, 0,    0,   8),
    row(S::SyncMix,     S::Mix,       N,    S::SyncMix2,   ANY,  O,    O,    O,    O,    O,    O,    136, 0,    0,   8),
    row(S::SyncMix2,    S::Mix,       N,    S::Undef,      O,    O,    O,    O,    O,    O,    O,    136, 0,    0,   8),
    row(S::ExclMix,     S::Mix,       Y,    S::Lock,       O,    O,    O,    XCL,  O,    O,    O,    0,   24,   0,   0),
    row(S::MixSync,     S::Sync,      N,    S::MixSync2,   O,    O,    O,    O,    O,    O,    O,    136, 0,    0,   8),
    row(S::MixSync2,    S::Sync,      N,    S::Undef,      O,    O,    O,    O,    O,    O,    O,    136, 0,    0,   8),
    row(S::MixLock,     S::Lock,      N,    S::Mix,        O,    O,    REQ,  O,    O,    O,    O,    0,   0,    0,   0),
    row(S::MixLock2,    S::Lock,      N,    S::Lock,       O,    O,    REQ,  O,    O,    O,    O,    0,   0,    0,   0),
    row(S::MixExcl,     S::Excl,      Y,    S::Lock,       O,    O,    O,    XCL,  O,    O,    O,    0,   24,   0,   0),
    row(S::PreScan,     S::Scan,      N,    S::Lock,       O,    O,    O,    O,    O,    O,    O,    0,   0,    0,   0),
    row(S::Scan,        S::Lock,      N,    S::Lock,       O,    O,    O,    O,    O,    O,    O,    0,   0,    0,   0),
    row(S::SnapSync,    S::Sync,      N,    S::Lock,       O,    O,    O,    O,    AUTH, O,    O,    0,   0,    0,   0),
    row(S::Xsyn,        STABLE,       Y,    S::Lock,       AUTH, AUTH, AUTH, XCL,  O,    O,    O,    0,   36,   0,   0),
    row(S::XsynExcl,    S::Excl,      Y,    S::Lock,       AUTH, O,    XCL,  O,    O,    O,    O,    0,   36,   0,   0),
    row(S::ExclXsyn,    S::Xsyn,      N,    S::Lock,       O,    O,    XCL,  O,    O,    O,    O,    0,   36,   0,   0),
    row(S::XsynSync,    S::Sync,      Y,    S::Lock,       AUTH, O,    AUTH, O,    O,    O,    O,    0,   4,    0,   0),
    row(S::XsynLock,    S::Lock,      Y,    S::Lock,       AUTH, O,    O,    XCL,  O,    O,    O,    0,   36,   0,   0),
    row(S::XsynMix,     S::Mix,       Y,    S::Lock,       O,    O,    O,    XCL,  O,    O,    O,    0,   0,    0,   0),
];

// §1.6 locallock.
#[rustfmt::skip]
const LOCAL_ROWS: [(LockState, StateRow); 1] = [
    //  state            next          loner replica        read  rproj rdlk  wrlk  fwrlk lease xlock any loner xlkr repl
    row(S::Lock,        STABLE,       N,    S::Lock,       ANY,  O,    ANY,  O,    O,    ANY,  AUTH, 0,  0,    0,   0),
];

/// simplelock (§1.2 fields, §1.3 rows).
pub const SIMPLELOCK: MachineDef = build(Machine::Simple, 3, 1, 3, true, &SIMPLE_ROWS);
/// scatterlock (§1.2 fields, §1.4 rows).
pub const SCATTERLOCK: MachineDef = build(Machine::Scatter, 3, 1, 3, false, &SCATTER_ROWS);
/// filelock (§1.2 fields, §1.5 rows).
pub const FILELOCK: MachineDef = build(Machine::File, 255, 141, 39, false, &FILE_ROWS);
/// locallock (§1.2 fields, §1.6 row).
pub const LOCALLOCK: MachineDef = build(Machine::Local, 0, 0, 0, false, &LOCAL_ROWS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_values_and_symbols_fact_28() {
        let all = [Perm::Never, Perm::Any, Perm::Auth, Perm::Xcl, Perm::Req];
        assert_eq!(all.map(Perm::value), [0, 1, 2, 3, 5]);
        for p in all {
            assert_eq!(Perm::from_symbol(p.symbol()), Some(p));
            assert_eq!(Perm::from_symbol(&p.symbol().to_ascii_lowercase()), Some(p));
            assert_eq!(p.to_string(), p.symbol());
        }
        assert_eq!(Perm::from_symbol("never"), Some(Perm::Never));
        assert_eq!(Perm::from_symbol("4"), None);
        assert_eq!(Perm::from_symbol("FW"), None);
    }

    #[test]
    fn machine_names_round_trip() {
        for m in Machine::ALL {
            assert_eq!(Machine::from_name(m.name()), Some(m));
            assert_eq!(Machine::from_name(&m.name().to_ascii_uppercase()), Some(m));
            assert_eq!(m.def().machine, m);
            assert_eq!(m.to_string(), m.name());
        }
        assert_eq!(Machine::from_name("simple"), Some(Machine::Simple));
        assert_eq!(Machine::from_name("Scatter"), Some(Machine::Scatter));
        assert_eq!(Machine::from_name("file"), Some(Machine::File));
        assert_eq!(Machine::from_name("local"), Some(Machine::Local));
        assert_eq!(Machine::from_name("lock"), None);
        assert_eq!(Machine::from_name(""), None);
    }

    #[test]
    fn listed_row_counts_sections_1_3_to_1_6() {
        let counts = Machine::ALL.map(|m| m.states_with_rows().count());
        assert_eq!(counts, [15, 16, 32, 1]);
        assert!(Machine::Local.states_with_rows().eq([LockState::Lock]));
    }

    #[test]
    fn unlisted_rows_are_zero_and_listed_rows_are_explicit_fact_25() {
        for m in Machine::ALL {
            assert!(!m.has_row(LockState::Undef));
            for s in LockState::ALL {
                if !m.has_row(s) {
                    assert_eq!(*m.row(s), StateRow::ZERO, "{m} {s}");
                    assert!(m.row(s).is_stable());
                }
            }
        }
        // Listed rows that carry nothing but a target still count as listed.
        assert!(Machine::Simple.has_row(LockState::RemoteXlock));
        assert!(Machine::Scatter.has_row(LockState::MixTsyn));
        // The §1.4 quirk: scatterlock has no MIX_SYNC2 row while filelock does.
        assert!(!Machine::Scatter.has_row(LockState::MixSync2));
        assert!(Machine::File.has_row(LockState::MixSync2));
        for m in Machine::ALL {
            assert!(!m.has_row(LockState::LockMix), "LOCK_MIX is unused everywhere");
        }
    }

    #[test]
    fn targets_are_listed_stable_states() {
        for m in Machine::ALL {
            for s in m.states_with_rows() {
                let r = m.row(s);
                if !r.is_stable() {
                    assert!(m.has_row(r.next), "{m} {s} heads to unlisted {}", r.next);
                }
            }
        }
    }

    #[test]
    fn facts_6_7_xlock_targets() {
        use LockState as S;
        assert_eq!(Machine::Simple.row(S::Xlock).next, S::Sync);
        assert_eq!(Machine::Simple.row(S::XlockDone).next, S::Sync);
        for s in [S::Xlock, S::XlockDone, S::XlockSnap] {
            assert_eq!(Machine::File.row(s).next, S::Lock, "{s}");
        }
        assert_eq!(Machine::Simple.row(S::LockXlock).next, S::PreXlock);
        assert_eq!(Machine::Simple.row(S::PreXlock).next, S::Lock);
        assert_eq!(Machine::Simple.row(S::PreXlock).can_xlock, Perm::Any);
    }

    #[test]
    fn fact_20_replica_only_states() {
        use LockState as S;
        assert_eq!(Machine::File.row(S::SyncMix2).replica_state, S::Undef);
        assert_eq!(Machine::File.row(S::MixSync2).replica_state, S::Undef);
        assert_eq!(Machine::Scatter.row(S::SyncMix2).replica_state, S::Undef);
        assert_eq!(Machine::Scatter.row(S::MixSync).replica_state, S::Lock);
        assert_eq!(Machine::File.row(S::MixSync).replica_state, S::MixSync2);
    }

    #[test]
    fn facts_22_23_24_machine_fields() {
        let f = |m: Machine| {
            let d = m.def();
            (d.allowed_ever_auth, d.allowed_ever_replica, d.careful, d.can_remote_xlock)
        };
        assert_eq!(f(Machine::Simple), (3, 1, 3, true));
        assert_eq!(f(Machine::Scatter), (3, 1, 3, false));
        assert_eq!(f(Machine::File), (255, 141, 39, false));
        assert_eq!(f(Machine::Local), (0, 0, 0, false));
        assert_eq!(Machine::File.def().careful_caps(false), 0);
        assert_eq!(Machine::File.def().careful_caps(true), 39);
        assert_eq!(Machine::File.def().allowed_ever(false), 141);
    }

    #[test]
    fn caps_stay_within_allowed_ever() {
        for m in Machine::ALL {
            let d = m.def();
            for s in m.states_with_rows() {
                let r = m.row(s);
                assert_eq!((r.caps | r.loner_caps | r.xlocker_caps) & !d.allowed_ever_auth, 0, "{m} {s}");
                assert_eq!(r.replica_caps & !d.allowed_ever_replica, 0, "{m} {s}");
            }
        }
    }
}
