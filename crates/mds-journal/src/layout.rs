//! File layouts and striping: how the journal's single byte stream maps onto objects.
//!
//! The journal is a file (inode `0x200 + rank`) and is striped like any CephFS file: the stream
//! is cut into stripe units, dealt round-robin over `stripe_count` objects, and once each of
//! those objects holds `object_size` bytes the next *object set* begins. One object set is the
//! layout's *period* (`object_size × stripe_count` bytes of stream). Object `n` of the journal
//! is named `<ino hex>.<n as 8 hex digits>` (mds §6.4, fact 72); object 0 holds the header and
//! the stream starts one period in, so data starts in object set 1.

use serde::Serialize;

use crate::types::InodeNo;

/// A file layout (`file_layout_t`), restricted to what striping needs plus the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FileLayout {
    /// Bytes per stripe unit.
    pub stripe_unit: u32,
    /// Objects per object set.
    pub stripe_count: u32,
    /// Bytes per object.
    pub object_size: u32,
    /// The metadata pool's id (informational; the device decides where objects go). −1 = none.
    pub pool_id: i64,
}

impl Default for FileLayout {
    /// Ceph's default: 4 MiB objects, one object per set (period 4 MiB).
    fn default() -> Self {
        FileLayout { stripe_unit: 4 << 20, stripe_count: 1, object_size: 4 << 20, pool_id: -1 }
    }
}

/// One contiguous piece of a stream range inside one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Object number.
    pub object: u64,
    /// Offset inside the object.
    pub offset: u64,
    /// Length.
    pub len: u64,
    /// Where this piece starts in the stream.
    pub stream_offset: u64,
}

impl FileLayout {
    /// A layout with one object per set and `object_size`-byte objects (stripe unit = object
    /// size), the shape Ceph journals use; tests use small objects to cross boundaries often.
    pub const fn simple(object_size: u32) -> FileLayout {
        FileLayout { stripe_unit: object_size, stripe_count: 1, object_size, pool_id: -1 }
    }

    /// Checks the striping invariants; `Err` names the violated one.
    pub fn validate(&self) -> Result<(), String> {
        if self.stripe_unit == 0 || self.stripe_count == 0 || self.object_size == 0 {
            return Err(format!("layout has a zero field: {self:?}"));
        }
        if !self.object_size.is_multiple_of(self.stripe_unit) {
            return Err(format!(
                "object_size {} is not a multiple of stripe_unit {}",
                self.object_size, self.stripe_unit
            ));
        }
        Ok(())
    }

    /// Stream bytes per object set.
    pub const fn period(&self) -> u64 {
        self.object_size as u64 * self.stripe_count as u64
    }

    fn stripes_per_object(&self) -> u64 {
        u64::from(self.object_size / self.stripe_unit)
    }

    /// The object and in-object offset holding stream byte `offset`. The layout must be valid.
    pub fn locate(&self, offset: u64) -> (u64, u64) {
        let su = u64::from(self.stripe_unit);
        let sc = u64::from(self.stripe_count);
        let block = offset / su;
        let stripe = block / sc;
        let pos_in_stripe = block % sc;
        let object_set = stripe / self.stripes_per_object();
        let object = object_set * sc + pos_in_stripe;
        let in_object = (stripe % self.stripes_per_object()) * su + offset % su;
        (object, in_object)
    }

    /// The stream offset of byte `in_object` of object `object` (inverse of [`Self::locate`]).
    pub fn stream_offset(&self, object: u64, in_object: u64) -> u64 {
        let su = u64::from(self.stripe_unit);
        let sc = u64::from(self.stripe_count);
        let object_set = object / sc;
        let pos_in_stripe = object % sc;
        let stripe = object_set * self.stripes_per_object() + in_object / su;
        (stripe * sc + pos_in_stripe) * su + in_object % su
    }

    /// The pieces of stream range `[offset, offset + len)`, in stream order.
    pub fn map(&self, offset: u64, len: u64) -> Vec<Extent> {
        let su = u64::from(self.stripe_unit);
        let mut out: Vec<Extent> = Vec::new();
        let mut pos = offset;
        let end = offset + len;
        while pos < end {
            let take = (su - pos % su).min(end - pos);
            let (object, in_object) = self.locate(pos);
            match out.last_mut() {
                // Consecutive stripe units of one object only meet when stripe_count is 1.
                Some(last) if last.object == object && last.offset + last.len == in_object => {
                    last.len += take
                }
                _ => out.push(Extent { object, offset: in_object, len: take, stream_offset: pos }),
            }
            pos += take;
        }
        out
    }

    /// The first object number of the object set holding stream offset `offset`.
    pub fn first_object_of_set(&self, offset: u64) -> u64 {
        (offset / self.period()) * u64::from(self.stripe_count)
    }

    /// How many bytes of `object` lie before stream offset `stream_end`: the size the object
    /// must be truncated to so that it holds nothing at or after `stream_end`.
    pub fn object_bytes_before(&self, object: u64, stream_end: u64) -> u64 {
        // stream_offset is increasing in the in-object offset, so binary-search the count.
        let (mut lo, mut hi) = (0u64, u64::from(self.object_size));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.stream_offset(object, mid) < stream_end {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// The object name for object `n` of the file `ino`: `<ino hex>.<n as 8 hex digits>`.
pub fn object_name(ino: InodeNo, n: u64) -> String {
    format!("{:x}.{:08x}", ino.0, n)
}

/// The object number of `name` if it belongs to `ino` (the inverse of [`object_name`]).
pub fn parse_object_name(ino: InodeNo, name: &str) -> Option<u64> {
    let (prefix, num) = name.split_once('.')?;
    if u64::from_str_radix(prefix, 16).ok()? != ino.0 || num.len() < 8 || prefix != format!("{:x}", ino.0) {
        return None;
    }
    if !num.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(num, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_object_names_fact_72() {
        let ino = InodeNo::journal_of_rank(0);
        assert_eq!(object_name(ino, 0), "200.00000000");
        assert_eq!(object_name(InodeNo::journal_of_rank(3), 0x1a), "203.0000001a");
        assert_eq!(parse_object_name(ino, "200.0000001a"), Some(0x1a));
        assert_eq!(parse_object_name(ino, "201.00000001"), None);
        assert_eq!(parse_object_name(ino, "200.xyz"), None);
        assert_eq!(parse_object_name(ino, "200.00000000.inode"), None);
    }

    #[test]
    fn default_layout_data_starts_in_object_1() {
        let l = FileLayout::default();
        assert_eq!(l.period(), 4 << 20);
        assert_eq!(l.locate(l.period()), (1, 0));
        assert_eq!(l.locate(2 * l.period() - 1), (1, (4 << 20) - 1));
    }

    #[test]
    fn striped_layout_round_trips() {
        let l = FileLayout { stripe_unit: 4, stripe_count: 3, object_size: 8, pool_id: 1 };
        l.validate().unwrap();
        assert_eq!(l.period(), 24);
        // Stream bytes 0..4 → obj0, 4..8 → obj1, 8..12 → obj2, 12..16 → obj0 @4 ...
        assert_eq!(l.locate(0), (0, 0));
        assert_eq!(l.locate(5), (1, 1));
        assert_eq!(l.locate(13), (0, 5));
        assert_eq!(l.locate(24), (3, 0));
        for off in 0..200 {
            let (o, i) = l.locate(off);
            assert_eq!(l.stream_offset(o, i), off);
        }
        let ext = l.map(2, 12);
        let total: u64 = ext.iter().map(|e| e.len).sum();
        assert_eq!(total, 12);
        assert_eq!(ext[0], Extent { object: 0, offset: 2, len: 2, stream_offset: 2 });
        assert_eq!(l.object_bytes_before(0, 13), 5);
        assert_eq!(l.object_bytes_before(1, 13), 4);
        assert_eq!(l.object_bytes_before(2, 13), 4);
        assert_eq!(l.object_bytes_before(0, 0), 0);
        assert_eq!(l.object_bytes_before(0, 1000), 8);
    }

    #[test]
    fn simple_layout_merges_extents() {
        let l = FileLayout::simple(16);
        let ext = l.map(10, 30);
        assert_eq!(
            ext,
            vec![
                Extent { object: 0, offset: 10, len: 6, stream_offset: 10 },
                Extent { object: 1, offset: 0, len: 16, stream_offset: 16 },
                Extent { object: 2, offset: 0, len: 8, stream_offset: 32 },
            ]
        );
    }

    #[test]
    fn invalid_layouts_are_rejected() {
        assert!(
            FileLayout { stripe_unit: 3, stripe_count: 1, object_size: 8, pool_id: 0 }.validate().is_err()
        );
        assert!(
            FileLayout { stripe_unit: 0, stripe_count: 1, object_size: 8, pool_id: 0 }.validate().is_err()
        );
    }
}
