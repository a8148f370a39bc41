//! Methods of `rbd_id.<name>` (the id object) and `rbd_directory` (name ↔ id in both directions).

use std::collections::BTreeMap;

use super::{
    MAX_KEYS_READ, check_exists, decode_input, invalid, is_enoent, key, omap_get_vals_prefixed, os, output,
    rbd_errno, read_key,
};
use crate::cls::ClsContext;
use crate::encoding::{Decoder, encode_to_vec};
use crate::error::{Error, Result, errno};

/// cls_rbd's `is_valid_id`: non-empty and ASCII letters and digits only.
fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `get_id`: the id stored as the object's data. No object, or an empty one, is `-ENOENT`;
/// data that does not decode is `-EIO`.
pub(super) fn get_id(ctx: &mut dyn ClsContext, _input: &[u8]) -> Result<Vec<u8>> {
    let (size, _) = ctx.stat()?;
    if size == 0 {
        return Err(Error::NotFound(format!("cls_rbd: {:?} holds no id", ctx.object_name())));
    }
    let data = ctx.read(0, size)?;
    let id = Decoder::new(&data)
        .string()
        .map_err(|e| os(errno::EIO, format!("cls_rbd: undecodable id in {:?}: {e}", ctx.object_name())))?;
    Ok(output(|e| {
        e.string(&id);
    }))
}

/// `set_id`: write the id into an existing, empty id object. No object `-ENOENT` (librbd
/// creates it in the same op); an id that is not alphanumeric `-EINVAL`; an id already set
/// `-EEXIST`.
pub(super) fn set_id(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    check_exists(ctx)?;
    let id = decode_input(input, |d| d.string())?;
    if !is_valid_id(&id) {
        return Err(invalid(format!("cls_rbd: invalid image id {id:?}")));
    }
    let (size, _) = ctx.stat()?;
    if size != 0 {
        return Err(Error::Exists(format!("cls_rbd: {:?} already holds an id", ctx.object_name())));
    }
    ctx.write_full(&encode_to_vec(&id))?;
    Ok(Vec::new())
}

/// The checks of cls_rbd's `dir_add_image_helper`, made against the directory as it was
/// before the method started.
fn check_add(ctx: &dyn ClsContext, name: &str, id: &str, check_for_unique_id: bool) -> Result<()> {
    if name.is_empty() || !is_valid_id(id) {
        return Err(invalid(format!("cls_rbd: invalid image name {name:?} or id {id:?}")));
    }
    // As in cls_rbd, anything but "no such key" (even an undecodable entry) counts as taken.
    if !matches!(read_key::<String>(ctx, &key::dir_name(name)), Err(ref e) if is_enoent(e)) {
        return Err(Error::Exists(format!("cls_rbd: image name {name:?} is taken")));
    }
    if check_for_unique_id && !matches!(read_key::<String>(ctx, &key::dir_id(id)), Err(ref e) if is_enoent(e))
    {
        return Err(os(rbd_errno::EBADF, format!("cls_rbd: image id {id:?} is taken")));
    }
    Ok(())
}

fn write_entry(ctx: &mut dyn ClsContext, name: &str, id: &str) -> Result<()> {
    let mut kv = BTreeMap::new();
    kv.insert(key::dir_name(name), encode_to_vec(id));
    kv.insert(key::dir_id(id), encode_to_vec(name));
    ctx.omap_set_vals(&kv)
}

/// The checks of cls_rbd's `dir_remove_image_helper`: both entries must exist (`-ENOENT`) and
/// point at each other (`-ESTALE`: the caller raced with a rename).
fn check_remove(ctx: &dyn ClsContext, name: &str, id: &str) -> Result<()> {
    let stored_id: String = read_key(ctx, &key::dir_name(name))?;
    let stored_name: String = read_key(ctx, &key::dir_id(id))?;
    if stored_name != name || stored_id != id {
        return Err(os(
            errno::ESTALE,
            format!("cls_rbd: directory maps {name:?} to {stored_id:?} and {id:?} to {stored_name:?}"),
        ));
    }
    Ok(())
}

fn remove_entry(ctx: &mut dyn ClsContext, name: &str, id: &str) -> Result<()> {
    ctx.omap_remove_keys(&[key::dir_name(name)])?;
    ctx.omap_remove_keys(&[key::dir_id(id)])
}

/// `dir_add_image`: add name ↔ id, creating the directory. Invalid name or id `-EINVAL`; the
/// name taken `-EEXIST`; the id taken `-EBADF`.
pub(super) fn dir_add_image(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    ctx.create(false)?;
    let (name, id) = decode_input(input, |d| Ok((d.string()?, d.string()?)))?;
    check_add(ctx, &name, &id, true)?;
    write_entry(ctx, &name, &id)?;
    Ok(Vec::new())
}

/// `dir_remove_image`: remove name ↔ id (`-ENOENT`, `-ESTALE` as in [`check_remove`]).
pub(super) fn dir_remove_image(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let (name, id) = decode_input(input, |d| Ok((d.string()?, d.string()?)))?;
    check_remove(ctx, &name, &id)?;
    remove_entry(ctx, &name, &id)?;
    Ok(Vec::new())
}

/// `dir_rename_image`: move `id` from `src` to `dest` in one step. `src` and `id` must map to
/// each other (`-ENOENT`, `-ESTALE`); `dest` must be valid (`-EINVAL`) and free (`-EEXIST`).
/// The id is not checked for uniqueness (it is the one being moved). Because Ceph's checks do
/// not see the method's own removal, renaming to the same name is `-EEXIST`.
pub(super) fn dir_rename_image(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let (src, dest, id) = decode_input(input, |d| Ok((d.string()?, d.string()?, d.string()?)))?;
    check_remove(ctx, &src, &id)?;
    check_add(ctx, &dest, &id, false)?;
    remove_entry(ctx, &src, &id)?;
    write_entry(ctx, &dest, &id)?;
    Ok(Vec::new())
}

/// `dir_get_id`: the id of an image name (`-ENOENT` if unknown).
pub(super) fn dir_get_id(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let name = decode_input(input, |d| d.string())?;
    let id: String = read_key(ctx, &key::dir_name(&name))?;
    Ok(output(|e| {
        e.string(&id);
    }))
}

/// `dir_get_name`: the name of an image id (`-ENOENT` if unknown).
pub(super) fn dir_get_name(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let id = decode_input(input, |d| d.string())?;
    let name: String = read_key(ctx, &key::dir_id(&id))?;
    Ok(output(|e| {
        e.string(&name);
    }))
}

/// `dir_list`: up to `max` images after `start_after`, as name → id, sorted by name. An id
/// that does not decode is `-EIO`.
pub(super) fn dir_list(ctx: &mut dyn ClsContext, input: &[u8]) -> Result<Vec<u8>> {
    let (start_after, max) = decode_input(input, |d| Ok((d.string()?, d.u64()?)))?;
    let mut images: BTreeMap<String, String> = BTreeMap::new();
    let mut last_read = key::dir_name(&start_after);
    let mut more = true;
    while more && (images.len() as u64) < max {
        let (page, page_more) = omap_get_vals_prefixed(ctx, &last_read, key::DIR_NAME_PREFIX, MAX_KEYS_READ)?;
        more = page_more;
        for (k, v) in &page {
            let id = Decoder::new(v)
                .string()
                .map_err(|e| os(errno::EIO, format!("cls_rbd: undecodable directory entry {k:?}: {e}")))?;
            let name = k.strip_prefix(key::DIR_NAME_PREFIX).unwrap_or(k).to_owned();
            images.insert(name, id);
            if images.len() as u64 >= max {
                break;
            }
        }
        match images.keys().next_back() {
            Some(last) if !page.is_empty() => last_read = key::dir_name(last),
            _ => {}
        }
    }
    Ok(output(|e| {
        e.put(&images);
    }))
}
