//! Object classes: code that runs "inside the OSD", atomically against one object.
//!
//! Ceph lets clients call methods of server-side classes with `exec(object, class, method,
//! input)`; librbd's exclusive lock is nothing but calls to the `lock` class on the image header
//! (rbd §1.6, §4.8, §6). A method sees exactly one object through [`ClsContext`], runs under the
//! placement group's lock, and either all of its changes land or none do. The embedded backend
//! keeps that promise by running the method against a scratch copy of the object and committing
//! the copy only if the method returns `Ok`.
//!
//! Classes are plain Rust functions registered in a [`ClassRegistry`]; an unknown class or method
//! is `-EOPNOTSUPP`, as an OSD answers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::error::{Error, Result};
use crate::types::{EntityAddr, EntityName, UTime};

pub mod lock;
pub mod rbd;

/// What one class method sees: exactly one object, atomically (the OSD runs a method under the
/// PG lock).
///
/// Errors follow the OSD: a missing object is -ENOENT, a missing xattr -ENODATA, a missing omap
/// key -ENOENT. A method registered without [`CLS_METHOD_WR`] that tries to modify the object
/// gets -EIO, as the classic OSD answers a method "that tried to update the object but is not
/// marked WR".
pub trait ClsContext {
    /// The object's name.
    fn object_name(&self) -> &str;
    /// Whether the object currently exists (as changed so far by this method).
    fn exists(&self) -> bool;
    /// Create the object if missing (exclusive=true: -EEXIST if it exists).
    fn create(&mut self, exclusive: bool) -> Result<()>;
    /// Size and mtime; -ENOENT if missing.
    fn stat(&self) -> Result<(u64, UTime)>;
    /// `len` bytes from `off` (0 = to the end); -ENOENT if missing.
    fn read(&self, off: u64, len: u64) -> Result<Vec<u8>>;
    /// Replace the data, creating the object if missing.
    fn write_full(&mut self, data: &[u8]) -> Result<()>;
    /// Delete the object; -ENOENT if missing.
    fn remove(&mut self) -> Result<()>;
    /// One xattr: -ENOENT if the object is missing, -ENODATA if the attribute is.
    fn getxattr(&self, name: &str) -> Result<Vec<u8>>;
    /// All xattrs; -ENOENT if the object is missing.
    fn getxattrs(&self) -> Result<BTreeMap<String, Vec<u8>>>;
    /// Set an xattr, creating the object if missing (as an OSD does).
    fn setxattr(&mut self, name: &str, value: &[u8]) -> Result<()>;
    /// Remove an xattr; -ENOENT if the object is missing.
    fn rmxattr(&mut self, name: &str) -> Result<()>;
    /// One omap value; -ENOENT if the object or the key is missing.
    fn omap_get_val(&self, key: &str) -> Result<Vec<u8>>;
    /// Up to `max` entries after `start_after`, and whether more follow; -ENOENT if missing.
    fn omap_get_vals(&self, start_after: &str, max: u64) -> Result<(BTreeMap<String, Vec<u8>>, bool)>;
    /// Set omap entries, creating the object if missing.
    fn omap_set_vals(&mut self, kv: &BTreeMap<String, Vec<u8>>) -> Result<()>;
    /// Remove omap keys; -ENOENT if the object is missing.
    fn omap_remove_keys(&mut self, keys: &[String]) -> Result<()>;
    /// The OSD's notion of now (through the cluster's Clock).
    fn now(&self) -> UTime;
    /// Who is calling: entity `client.<gid>`.
    fn caller_entity(&self) -> EntityName;
    /// The caller's address.
    fn caller_addr(&self) -> EntityAddr;
}

/// Method flag: reads the object (Ceph's `CLS_METHOD_RD`).
pub const CLS_METHOD_RD: u32 = 1;
/// Method flag: may modify the object (Ceph's `CLS_METHOD_WR`). Without it the method runs as a
/// read: on a missing object the call fails with -ENOENT before the method runs, and any
/// modification attempt fails with -EIO.
pub const CLS_METHOD_WR: u32 = 2;

/// A method: decode input, act on the one object, return encoded output. Errors carry the errno.
pub type ClsMethod = fn(&mut dyn ClsContext, &[u8]) -> Result<Vec<u8>>;

/// A registered method and its flags.
#[derive(Clone, Copy)]
pub struct ClsMethodEntry {
    /// [`CLS_METHOD_RD`] / [`CLS_METHOD_WR`] bits.
    pub flags: u32,
    /// The implementation.
    pub func: ClsMethod,
}

impl ClsMethodEntry {
    /// Whether the method may modify the object.
    pub fn is_write(&self) -> bool {
        self.flags & CLS_METHOD_WR != 0
    }
}

impl fmt::Debug for ClsMethodEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClsMethodEntry").field("flags", &self.flags).finish_non_exhaustive()
    }
}

/// The classes an (embedded) OSD hosts, by class and method name.
#[derive(Clone, Default)]
pub struct ClassRegistry {
    methods: HashMap<String, HashMap<String, ClsMethodEntry>>,
}

impl fmt::Debug for ClassRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<String> =
            self.methods.iter().flat_map(|(c, ms)| ms.keys().map(move |m| format!("{c}.{m}"))).collect();
        names.sort();
        f.debug_struct("ClassRegistry").field("methods", &names).finish()
    }
}

impl ClassRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The registry every embedded cluster starts with: the `lock` class (rbd §6) and the
    /// `rbd` class subset images need (rbd §6.1).
    pub fn with_builtin_classes() -> Self {
        let mut reg = Self::new();
        lock::register(&mut reg);
        rbd::register(&mut reg);
        reg
    }

    /// Registers (or replaces) `class.method`.
    pub fn register(&mut self, class: &str, method: &str, flags: u32, func: ClsMethod) {
        tracing::debug!(class, method, flags, "cls method registered");
        self.methods
            .entry(class.to_owned())
            .or_default()
            .insert(method.to_owned(), ClsMethodEntry { flags, func });
    }

    /// Finds `class.method`; -EOPNOTSUPP if either is unknown.
    pub fn lookup(&self, class: &str, method: &str) -> Result<ClsMethodEntry> {
        let methods = self
            .methods
            .get(class)
            .ok_or_else(|| Error::NotSupported(format!("object class {class:?} is not loaded")))?;
        methods
            .get(method)
            .copied()
            .ok_or_else(|| Error::NotSupported(format!("object class {class:?} has no method {method:?}")))
    }

    /// `class.method` names, sorted.
    pub fn method_names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.methods.iter().flat_map(|(c, ms)| ms.keys().map(move |m| format!("{c}.{m}"))).collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::errno;

    fn noop(_: &mut dyn ClsContext, _: &[u8]) -> Result<Vec<u8>> {
        Ok(vec![])
    }

    #[test]
    fn unknown_class_or_method_is_eopnotsupp() {
        let mut reg = ClassRegistry::new();
        reg.register("t", "m", CLS_METHOD_RD, noop);
        assert!(reg.lookup("t", "m").is_ok());
        assert_eq!(reg.lookup("t", "x").unwrap_err().errno(), errno::EOPNOTSUPP);
        assert_eq!(reg.lookup("x", "m").unwrap_err().errno(), errno::EOPNOTSUPP);
        assert!(!reg.lookup("t", "m").unwrap().is_write());
    }

    #[test]
    fn builtin_registry_has_the_lock_class() {
        let reg = ClassRegistry::with_builtin_classes();
        for m in ["lock", "unlock", "break_lock", "get_info", "list_locks", "assert_locked", "set_cookie"] {
            assert!(reg.lookup("lock", m).is_ok(), "lock.{m}");
        }
        assert!(reg.lookup("lock", "get_info").is_ok_and(|e| !e.is_write()));
        assert!(reg.lookup("lock", "lock").is_ok_and(|e| e.is_write()));
    }
}
