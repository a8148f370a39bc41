//! The trivially correct sequential model the image is compared against (sled's approach,
//! STYLE.md): a byte vector that applies accepted writes in acceptance order, plus a copy per
//! snapshot taken when the snapshot succeeded.

use std::collections::BTreeMap;

/// What one image should contain if the exclusive lock serialises writers correctly.
#[derive(Debug, Clone, Default)]
pub struct ImageModel {
    /// The head contents; its length is the image size.
    pub head: Vec<u8>,
    /// Snapshot name to the head contents at the moment the snapshot was taken.
    pub snaps: BTreeMap<String, Vec<u8>>,
}

impl ImageModel {
    /// A zero-filled image of `size_bytes`, as a freshly created image reads.
    pub fn new(size_bytes: u64) -> ImageModel {
        ImageModel { head: vec![0; size_bytes as usize], snaps: BTreeMap::new() }
    }

    /// Applies an accepted write. Bytes past the end are dropped, as librbd clips them.
    pub fn write(&mut self, off: u64, data: &[u8]) {
        let off = off as usize;
        if off >= self.head.len() {
            return;
        }
        let n = data.len().min(self.head.len() - off);
        self.head[off..off + n].copy_from_slice(&data[..n]);
    }

    /// The expected bytes of a read (clipped at the end).
    pub fn read(&self, off: u64, len: u64) -> &[u8] {
        let off = (off as usize).min(self.head.len());
        let end = off.saturating_add(len as usize).min(self.head.len());
        &self.head[off..end]
    }

    /// A grow: the new tail reads as zeros.
    pub fn resize(&mut self, size_bytes: u64) {
        self.head.resize(size_bytes as usize, 0);
    }

    /// Records a successful snapshot.
    pub fn snap(&mut self, name: &str) {
        self.snaps.insert(name.to_owned(), self.head.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_clip_and_snapshots_freeze() {
        let mut m = ImageModel::new(8);
        m.write(6, b"abcd");
        assert_eq!(m.read(4, 10), &[0, 0, b'a', b'b']);
        m.snap("s");
        m.write(0, b"x");
        m.resize(10);
        assert_eq!(m.snaps["s"][0], 0);
        assert_eq!(m.head.len(), 10);
        assert_eq!(m.read(0, 1), b"x");
    }
}
