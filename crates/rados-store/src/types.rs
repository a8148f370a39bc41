//! Identities and times shared by every part of the store and by its wire formats.
//!
//! These are plain values so that the cluster core, the object classes and the encoders can
//! all be written against them independently; their Ceph encodings live in
//! [`crate::encoding`].

use std::fmt;

/// A RADOS client's global id (Ceph's `global_id` / instance id). Never 0 for a live client.
pub type Gid = u64;

/// The kind byte of a Ceph entity name (`CEPH_ENTITY_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityType {
    /// A monitor (`mon.N`), 0x01.
    Mon,
    /// A metadata server (`mds.N`), 0x02.
    Mds,
    /// An OSD (`osd.N`), 0x04.
    Osd,
    /// A client (`client.N`), 0x08: every librados connection.
    Client,
    /// A manager (`mgr.N`), 0x10.
    Mgr,
}

impl EntityType {
    /// The on-wire byte Ceph uses for this kind.
    pub const fn wire(self) -> u8 {
        match self {
            EntityType::Mon => 0x01,
            EntityType::Mds => 0x02,
            EntityType::Osd => 0x04,
            EntityType::Client => 0x08,
            EntityType::Mgr => 0x10,
        }
    }

    /// The kind for an on-wire byte, if it is one Ceph defines.
    pub const fn from_wire(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => EntityType::Mon,
            0x02 => EntityType::Mds,
            0x04 => EntityType::Osd,
            0x08 => EntityType::Client,
            0x10 => EntityType::Mgr,
            _ => return None,
        })
    }

    /// The prefix Ceph prints (`client`, `osd`, ...).
    pub const fn prefix(self) -> &'static str {
        match self {
            EntityType::Mon => "mon",
            EntityType::Mds => "mds",
            EntityType::Osd => "osd",
            EntityType::Client => "client",
            EntityType::Mgr => "mgr",
        }
    }
}

/// Ceph's `entity_name_t`: who a lock holder or watcher is, e.g. `client.4123`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityName {
    /// The kind of entity.
    pub kind: EntityType,
    /// Its number (a client's gid).
    pub num: i64,
}

impl EntityName {
    /// The entity name of a client connection: `client.<gid>`.
    pub const fn client(gid: Gid) -> Self {
        EntityName { kind: EntityType::Client, num: gid as i64 }
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.kind.prefix(), self.num)
    }
}

/// Ceph's `entity_addr_t`, restricted to what cephlock needs: an IPv4 or IPv6 socket address
/// and the nonce that tells two incarnations of a process on the same port apart.
///
/// Lock owners are compared and blocklisted by the legacy string form `<ip>:<port>/<nonce>`
/// (IPv6 as `[addr]:port/nonce`), which [`fmt::Display`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityAddr {
    /// Ceph's address type: 0 none, 1 legacy, 2 msgr2, 3 any. cls_lock stores lockers' addresses
    /// forced to legacy (1).
    pub addr_type: u32,
    /// Distinguishes incarnations of a client at the same ip:port.
    pub nonce: u32,
    /// The socket address.
    pub addr: std::net::SocketAddr,
}

impl EntityAddr {
    /// Ceph's `TYPE_LEGACY`.
    pub const TYPE_LEGACY: u32 = 1;
    /// Ceph's `TYPE_MSGR2`.
    pub const TYPE_MSGR2: u32 = 2;
    /// Ceph's `TYPE_ANY`.
    pub const TYPE_ANY: u32 = 3;

    /// A legacy-typed address, as cls_lock records lockers.
    pub fn legacy(addr: std::net::SocketAddr, nonce: u32) -> Self {
        EntityAddr { addr_type: Self::TYPE_LEGACY, nonce, addr }
    }

    /// The same address with the type forced to legacy (what cls_lock does on `lock`).
    pub fn as_legacy(self) -> Self {
        EntityAddr { addr_type: Self::TYPE_LEGACY, ..self }
    }
}

impl fmt::Display for EntityAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SocketAddr's Display already writes IPv6 as `[addr]:port`.
        write!(f, "{}/{}", self.addr, self.nonce)
    }
}

impl std::str::FromStr for EntityAddr {
    type Err = String;

    /// Parses the legacy string form `<ip>:<port>/<nonce>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (sock, nonce) =
            s.rsplit_once('/').ok_or_else(|| format!("address {s:?} lacks a '/<nonce>' suffix"))?;
        let addr = sock.parse().map_err(|e| format!("address {s:?}: {e}"))?;
        let nonce = nonce.parse().map_err(|e| format!("address {s:?}: nonce: {e}"))?;
        Ok(EntityAddr::legacy(addr, nonce))
    }
}

/// Ceph's `utime_t`: seconds and nanoseconds since the Unix epoch, as every timestamp on the
/// wire is encoded (u32 seconds, u32 nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct UTime {
    /// Whole seconds.
    pub sec: u32,
    /// Nanoseconds within the second (< 1e9).
    pub nsec: u32,
}

impl UTime {
    /// The zero time, which cls_lock reads as "never expires".
    pub const ZERO: UTime = UTime { sec: 0, nsec: 0 };

    /// True for the zero time.
    pub const fn is_zero(self) -> bool {
        self.sec == 0 && self.nsec == 0
    }

    /// From a duration since the epoch (saturating at u32 seconds).
    pub fn from_duration(d: std::time::Duration) -> Self {
        UTime { sec: u32::try_from(d.as_secs()).unwrap_or(u32::MAX), nsec: d.subsec_nanos() }
    }

    /// As a duration since the epoch.
    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::new(u64::from(self.sec), self.nsec.min(999_999_999))
    }

    /// This time plus a duration, saturating.
    pub fn saturating_add(self, d: std::time::Duration) -> Self {
        Self::from_duration(self.as_duration().saturating_add(d))
    }
}

impl fmt::Display for UTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.sec, self.nsec / 1000)
    }
}
