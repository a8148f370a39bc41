//! Image metadata (`rbd image-meta`, librbd's `conf_*` overrides): `metadata_<key>` omap
//! entries whose values are stored as raw bytes, not length-prefixed.

use std::collections::BTreeMap;

use super::{MAX_KEYS_READ, decode_input, key, omap_get_vals_prefixed, output};
use crate::cls::ClsContext;
use crate::error::Result;

/// `metadata_set`: store every entry of the input map (creating the object if need be; cls_rbd
/// does not check for a header).
pub(super) fn metadata_set(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let data: BTreeMap<String, Vec<u8>> = decode_input(input, |d| d.map(|d| d.string(), |d| d.bytes()))?;
    let raw: BTreeMap<String, Vec<u8>> = data.into_iter().map(|(k, v)| (key::metadata(&k), v)).collect();
    ctx.omap_set_vals(&raw)?;
    Ok(Vec::new())
}

/// `metadata_get`: one value, length-prefixed; `-ENOENT` if the key is not set.
pub(super) fn metadata_get(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let k = decode_input(input, |d| d.string())?;
    let value = ctx.omap_get_val(&key::metadata(&k))?;
    Ok(output(|e| {
        e.bytes(&value);
    }))
}

/// `metadata_list`: up to `max` entries (0 means 64) after `start_after`, keys without their
/// prefix, values length-prefixed.
pub(super) fn metadata_list(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let (start_after, max) = decode_input(input, |d| Ok((d.string()?, d.u64()?)))?;
    let max = if max == 0 { MAX_KEYS_READ } else { max };
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut last_read = key::metadata(&start_after);
    let mut more = true;
    while more && (data.len() as u64) < max {
        let want = MAX_KEYS_READ.min(max - data.len() as u64);
        let (page, page_more) = omap_get_vals_prefixed(ctx, &last_read, key::METADATA_PREFIX, want)?;
        more = page_more;
        if let Some(last) = page.keys().next_back() {
            last_read = last.clone();
        }
        for (k, v) in page {
            let name = k.strip_prefix(key::METADATA_PREFIX).unwrap_or(&k).to_owned();
            data.insert(name, v);
        }
    }
    Ok(output(|e| {
        e.map(
            &data,
            |e, k| {
                e.string(k);
            },
            |e, v| {
                e.bytes(v);
            },
        );
    }))
}

/// `metadata_remove`: remove one key; a key that is not set is not an error (the OSD does not
/// report it), a missing object is `-ENOENT`.
pub(super) fn metadata_remove(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let k = decode_input(input, |d| d.string())?;
    ctx.omap_remove_keys(&[key::metadata(&k)])?;
    Ok(Vec::new())
}
