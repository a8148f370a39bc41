//! Name rules for pools, namespaces, objects, xattrs and object classes.
//!
//! librados passes names as C strings, so a NUL can never reach a real OSD, and the OSD rejects
//! over-long names (`osd_max_object_name_len`, `osd_max_object_namespace_len`,
//! `osd_max_attr_name_len`). Checking the same rules here keeps code that works against the
//! embedded backend from failing on a real cluster, and turns would-be surprises into a typed
//! error that names the offending kind of name.

use crate::error::{Error, Result};

/// Longest object name an OSD accepts (`osd_max_object_name_len`, 16.2 default).
pub const MAX_OBJECT_NAME_LEN: usize = 2048;
/// Longest namespace an OSD accepts (`osd_max_object_namespace_len`, 16.2 default).
pub const MAX_NAMESPACE_LEN: usize = 256;
/// Longest xattr name an OSD accepts (`osd_max_attr_name_len`, 16.2 default).
pub const MAX_XATTR_NAME_LEN: usize = 100;
/// Longest pool name this store accepts. Ceph has no hard limit; this bound keeps pool names
/// printable in one line and is far above anything cephlock creates.
pub const MAX_POOL_NAME_LEN: usize = 256;
/// Longest object class or method name this store accepts (our own bound, as for pools).
pub const MAX_CLS_NAME_LEN: usize = 128;

fn check(kind: &str, name: &str, max: usize, allow_empty: bool) -> Result<()> {
    if name.is_empty() && !allow_empty {
        return Err(Error::InvalidArgument(format!("{kind} name is empty")));
    }
    if name.len() > max {
        return Err(Error::NameTooLong(format!("{kind} name is {} bytes; the limit is {max}", name.len())));
    }
    if name.contains('\0') {
        return Err(Error::InvalidArgument(format!("{kind} name {name:?} contains NUL")));
    }
    Ok(())
}

/// Object names: non-empty, at most [`MAX_OBJECT_NAME_LEN`] bytes, no NUL.
pub fn validate_object_name(name: &str) -> Result<()> {
    check("object", name, MAX_OBJECT_NAME_LEN, false)
}

/// Namespaces: may be empty (the default namespace), at most [`MAX_NAMESPACE_LEN`] bytes, no NUL.
pub fn validate_namespace(ns: &str) -> Result<()> {
    check("namespace", ns, MAX_NAMESPACE_LEN, true)
}

/// Pool names: non-empty, at most [`MAX_POOL_NAME_LEN`] bytes, no NUL.
pub fn validate_pool_name(name: &str) -> Result<()> {
    check("pool", name, MAX_POOL_NAME_LEN, false)
}

/// Xattr names: non-empty, at most [`MAX_XATTR_NAME_LEN`] bytes, no NUL.
pub fn validate_xattr_name(name: &str) -> Result<()> {
    check("xattr", name, MAX_XATTR_NAME_LEN, false)
}

/// Object class and method names: non-empty, at most [`MAX_CLS_NAME_LEN`] bytes, no NUL.
pub fn validate_cls_name(kind: &str, name: &str) -> Result<()> {
    check(kind, name, MAX_CLS_NAME_LEN, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::errno;

    #[test]
    fn object_names() {
        assert!(validate_object_name("rbd_header.1234").is_ok());
        assert_eq!(validate_object_name("").unwrap_err().errno(), errno::EINVAL);
        assert_eq!(validate_object_name("a\0b").unwrap_err().errno(), errno::EINVAL);
        assert!(validate_object_name(&"x".repeat(MAX_OBJECT_NAME_LEN)).is_ok());
        let long = "x".repeat(MAX_OBJECT_NAME_LEN + 1);
        assert_eq!(validate_object_name(&long).unwrap_err().errno(), errno::ENAMETOOLONG);
    }

    #[test]
    fn namespaces_may_be_empty_but_not_long() {
        assert!(validate_namespace("").is_ok());
        assert_eq!(
            validate_namespace(&"n".repeat(MAX_NAMESPACE_LEN + 1)).unwrap_err().errno(),
            errno::ENAMETOOLONG
        );
        assert_eq!(validate_namespace("a\0").unwrap_err().errno(), errno::EINVAL);
    }

    #[test]
    fn xattr_pool_and_cls_names() {
        assert!(validate_xattr_name("lock.rbd_lock").is_ok());
        assert_eq!(validate_xattr_name("").unwrap_err().errno(), errno::EINVAL);
        assert_eq!(
            validate_xattr_name(&"a".repeat(MAX_XATTR_NAME_LEN + 1)).unwrap_err().errno(),
            errno::ENAMETOOLONG
        );
        assert_eq!(validate_pool_name("").unwrap_err().errno(), errno::EINVAL);
        assert_eq!(validate_cls_name("class", "lo\0ck").unwrap_err().errno(), errno::EINVAL);
    }
}
