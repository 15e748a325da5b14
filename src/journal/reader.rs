//! Read access to the segment files, shared with readers outside every lock (receives,
//! browse, compaction's copies): a handle taken from [`Files`] keeps its segment readable even
//! after the segment is removed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::segment_name;
use crate::error::{Error, Result};
use crate::io::VFile;

/// Read access to segment files, shared with receiving threads.
#[derive(Clone, Default)]
pub struct Files(Arc<RwLock<BTreeMap<u64, Arc<dyn VFile>>>>);

impl Files {
    /// The file of segment `seg`.
    pub fn get(&self, seg: u64) -> Option<Arc<dyn VFile>> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&seg)
            .cloned()
    }
    pub(super) fn insert(&self, seg: u64, f: Arc<dyn VFile>) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(seg, f);
    }
    /// Drops every segment file (the store closed: its files are released at once, whatever
    /// handles of the store the program still holds; a later read fails).
    pub(crate) fn clear(&self) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
    pub(super) fn remove(&self, seg: u64) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&seg);
    }
    /// Reads `buf.len()` bytes at `off` of segment `seg`.
    pub fn read(&self, seg: u64, off: u64, buf: &mut [u8]) -> Result<()> {
        let f = self.get(seg).ok_or_else(|| {
            Error::new(crate::ErrorKind::Internal, format!("segment {seg} is gone"))
        })?;
        f.read_at(buf, off)
            .map_err(|e| Error::io(format!("reading {} at {off}", segment_name(seg)), &e))
    }
}
