//! JSON shapes for the foreign types that appear in events, so that `cephlock journal event
//! get ... json` output is stable without rados-store depending on serde.
//!
//! * `UTime` → `{"sec": u32, "nsec": u32}` (lossless);
//! * `EntityName` → `"client.4123"`; `EntityAddr` → `"127.0.0.1:0/42"`;
//! * byte blobs → lowercase hex strings.

use rados_store::{EntityAddr, EntityName, UTime};
use serde::Serializer;
use serde::ser::SerializeStruct;

pub(crate) fn utime<S: Serializer>(t: &UTime, s: S) -> Result<S::Ok, S::Error> {
    let mut st = s.serialize_struct("UTime", 2)?;
    st.serialize_field("sec", &t.sec)?;
    st.serialize_field("nsec", &t.nsec)?;
    st.end()
}

pub(crate) fn entity_name<S: Serializer>(n: &EntityName, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(n)
}

pub(crate) fn opt_entity_name<S: Serializer>(n: &Option<EntityName>, s: S) -> Result<S::Ok, S::Error> {
    match n {
        Some(n) => s.collect_str(n),
        None => s.serialize_none(),
    }
}

pub(crate) fn entity_addr<S: Serializer>(a: &EntityAddr, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(a)
}

/// A subtree map (`root → bounds`) as a list of `{"root", "bounds"}` objects in root order:
/// its keys are structs, which JSON object keys cannot be.
pub(crate) fn subtree_list<S: Serializer>(
    m: &std::collections::BTreeMap<crate::DirFrag, Vec<crate::DirFrag>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        root: &'a crate::DirFrag,
        bounds: &'a [crate::DirFrag],
    }
    s.collect_seq(m.iter().map(|(root, bounds)| Entry { root, bounds }))
}

pub(crate) fn hex<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&to_hex(b))
}

pub(crate) fn hex_map<S: Serializer>(
    m: &std::collections::BTreeMap<String, Vec<u8>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|(k, v)| (k, to_hex(v))))
}

/// Lowercase hex of a byte slice.
pub(crate) fn to_hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(b.len() * 2);
    for byte in b {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}
