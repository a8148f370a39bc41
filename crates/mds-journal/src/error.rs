//! The crate's errors, split by what the caller can do about them (STYLE §5).
//!
//! A journal has only two kinds of failure that matter to the metadata server: the device
//! failed (fatal for this rank: Ceph marks the rank damaged and respawns it, because a log that
//! may have lost a write can no longer vouch for anything after it), and the bytes on the device
//! are not what we wrote (damage found at replay, which an operator repairs with the journal
//! tool). Everything else is a caller bug reported as an invalid argument.

use rados_store::encoding::EncodingError;

/// Why one device operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The object does not exist (reads, stats and removals of a missing object).
    #[error("object {0} does not exist")]
    NotFound(String),
    /// The device reported an I/O failure. After this the journal trusts nothing it has not
    /// already seen acknowledged as durable.
    #[error("I/O error during {op} on {object}: {message} (errno {errno})")]
    Io {
        /// Which operation failed (`write`, `sync`, ...).
        op: &'static str,
        /// The object involved, or the directory for whole-device operations.
        object: String,
        /// The positive errno (EIO = 5 when the cause has none).
        errno: i32,
        /// The device's own description.
        message: String,
    },
    /// The request itself was malformed (a bad object name, an offset past the maximum object
    /// size). A bug in the caller, not a device failure.
    #[error("invalid device request: {0}")]
    Invalid(String),
}

impl DeviceError {
    /// An I/O error with EIO as its errno, for failures that carry none (fault injection).
    pub fn eio(op: &'static str, object: impl Into<String>, message: impl Into<String>) -> Self {
        DeviceError::Io { op, object: object.into(), errno: 5, message: message.into() }
    }

    /// Maps a `std::io::Error` from the local-directory device.
    pub fn from_io(op: &'static str, object: impl Into<String>, e: &std::io::Error) -> Self {
        let object = object.into();
        if e.kind() == std::io::ErrorKind::NotFound {
            return DeviceError::NotFound(object);
        }
        DeviceError::Io { op, object, errno: e.raw_os_error().unwrap_or(5), message: e.to_string() }
    }

    /// Maps an error of the RADOS device.
    pub fn from_rados(op: &'static str, object: impl Into<String>, e: &rados_store::Error) -> Self {
        let object = object.into();
        match e {
            rados_store::Error::NotFound(_) => DeviceError::NotFound(object),
            rados_store::Error::InvalidArgument(m) | rados_store::Error::NameTooLong(m) => {
                DeviceError::Invalid(format!("{op} {object}: {m}"))
            }
            other => DeviceError::Io { op, object, errno: other.errno(), message: other.to_string() },
        }
    }
}

/// Why a stored entry could not be read back: framing, checksum or event decoding.
///
/// Each variant describes the entry in isolation; whether the damage is a torn tail (harmless:
/// never acknowledged) or corruption in the middle of the log is decided by the scanner, which
/// knows what follows (see [`crate::tool::Integrity`] for the verdicts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes remain than the entry needs.
    #[error("entry truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the entry (or its fixed header) needs.
        needed: u64,
        /// Bytes left before the end of the stream.
        available: u64,
    },
    /// The entry does not start with the resilient sentinel.
    #[error("bad sentinel {found:#018x}")]
    BadSentinel {
        /// The eight bytes found, as a little-endian u64.
        found: u64,
    },
    /// The length field is larger than any entry this journal writes.
    #[error("entry length {len} exceeds the maximum {max}")]
    TooLong {
        /// The stored payload length.
        len: u64,
        /// The largest payload accepted.
        max: u64,
    },
    /// The trailing start pointer does not name the entry's own position.
    #[error("start pointer {found:#x} does not match the entry position {expected:#x}")]
    BadStartPointer {
        /// The stored pointer.
        found: u64,
        /// Where the entry actually starts.
        expected: u64,
    },
    /// The crc32c over the entry does not match.
    #[error("crc32c mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc {
        /// The stored checksum.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// The frame is intact but its payload is not a decodable event.
    #[error("event does not decode: {0}")]
    Event(#[from] EventDecodeError),
}

/// Why an event payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    /// The bytes are malformed for the event's encoding.
    #[error("{event}: {source}")]
    Encoding {
        /// Which event (or "event header") was being decoded.
        event: &'static str,
        /// What went wrong.
        source: EncodingError,
    },
    /// A LogEvent type id this implementation does not know (EExport, ETableServer, ...).
    #[error("unknown or unsupported event type {0}")]
    UnknownType(u32),
}

/// Everything the journal can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// A device operation failed.
    #[error("journal device error: {0}")]
    Device(#[from] DeviceError),
    /// The journal failed earlier (its device errored) and refuses all further work: a write
    /// it cannot prove durable must never be acknowledged, and neither may anything after it.
    #[error("journal has failed and refuses further work: {0}")]
    Failed(DeviceError),
    /// There is no journal header for this rank: the journal was never created.
    #[error("journal header object {object} does not exist")]
    NotFound {
        /// The header object's name.
        object: String,
    },
    /// The header object exists but does not decode or violates its invariants.
    #[error("journal header {object} is invalid: {reason}")]
    BadHeader {
        /// The header object's name.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Replay met a damaged entry that is not the tail of the log: data after it may have been
    /// acknowledged, so it cannot simply be dropped. Repair with the journal tool.
    #[error("journal corrupt at offset {offset:#x}: {reason}")]
    Corrupt {
        /// Stream offset of the damaged entry.
        offset: u64,
        /// What is wrong with it.
        reason: FrameError,
    },
    /// An event could not be encoded within the journal's limits.
    #[error("event too large: {len} bytes, the maximum entry payload is {max}")]
    EventTooLarge {
        /// The encoded payload length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A malformed request (a bad field name for `header set`, an invalid configuration...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The journal was shut down.
    #[error("journal is closed")]
    Closed,
}

/// The crate's result type.
pub type Result<T, E = JournalError> = std::result::Result<T, E>;
