//! The file layer, behind a trait so tests can inject faults (drop unsynced writes, tear the last
//! write, fail the k-th operation). The journal performs every file operation through [`Vfs`] and
//! [`VFile`]; nothing else in mqlite touches the store directory's journal files.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open file of the store.
// `len` is the file's size, a fallible I/O call; an `is_empty` would only invite a second one.
#[allow(clippy::len_without_is_empty)]
pub trait VFile: Send + Sync {
    /// Reads exactly `buf.len()` bytes at `offset` (short reads past the end are an error).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync(2)`: makes the written data durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Reserves `len` bytes of disk (`fallocate`), so later writes inside them cannot fail for
    /// space and their fdatasync need not update the file size.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// The file's size in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Whether the file still has a name (its directory was not deleted under it). Checked after
    /// each fdatasync: data synced into an unlinked file is not durable anywhere. Default: yes.
    fn linked(&self) -> io::Result<bool> {
        Ok(true)
    }
    /// Bytes `offset..offset + len` of the file mapped read-only into memory (`mmap(2)`), to
    /// read a large file (a journal segment) in place instead of copying it through a buffer.
    /// `Ok(None)`: no mapping (the range is empty or goes past the end of the file, or this
    /// file offers none): the caller reads with [`VFile::read_at`] instead. The default is
    /// `None`, so that a test layer sees every read. The file must not shrink while the map
    /// lives (the store's lock keeps other processes from writing its files).
    fn map(&self, offset: u64, len: u64) -> io::Result<Option<Mapped>> {
        let _ = (offset, len);
        Ok(None)
    }
}

/// A read-only memory map of a file's bytes (see [`VFile::map`]).
pub struct Mapped(memmap2::Mmap);

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// The directory operations of the store.
pub trait Vfs: Send + Sync {
    /// Creates a new file (fails if it exists), mode 0600, opened for reading and writing.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn VFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn VFile>>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Renames a file (atomically replacing `to`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Names (not paths) of the entries of a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// `fsync(2)` on a directory, so created, renamed and removed entries are durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

struct RealFile(File);

impl VFile for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        let rc = unsafe { libc::fallocate(self.0.as_raw_fd(), 0, 0, len as libc::off_t) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        // File systems without fallocate (tmpfs supports it; some FUSE ones do not): extend instead.
        if err.raw_os_error() == Some(libc::EOPNOTSUPP) {
            if self.0.metadata()?.len() < len {
                self.0.set_len(len)?;
            }
            return Ok(());
        }
        Err(err)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn linked(&self) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        Ok(self.0.metadata()?.nlink() > 0)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn map(&self, offset: u64, len: u64) -> io::Result<Option<Mapped>> {
        let Ok(n) = usize::try_from(len) else {
            return Ok(None);
        };
        // mmap(2) maps no empty range; and a map past the end of the file would fault
        // (SIGBUS) where a read reports an error: those are left to `read_at`.
        let size = self.0.metadata()?.len();
        if n == 0 || offset.checked_add(len).is_none_or(|end| end > size) {
            return Ok(None);
        }
        // SAFETY: the map is only read, and only while the store's directory lock is held,
        // which keeps every other mqlite process from writing or truncating its files; this
        // process does not shrink a file it has mapped (see `VFile::map`). What the map reads
        // is checked (CRC32C) before it is trusted.
        let m = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(n)
                // Its pages are mapped in one call (the file is read whole, front to back):
                // no page fault per page.
                .populate()
                .map(&self.0)?
        };
        Ok(Some(Mapped(m)))
    }
}

impl Vfs for RealFs {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn VFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)?;
        Ok(Arc::new(RealFile(f)))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn VFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)?;
        Ok(Arc::new(RealFile(f)))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir)? {
            if let Ok(name) = e?.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Joins a store directory and a file name chosen by mqlite (never by a caller).
pub(crate) fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// The file layer of a read-only open (`StoreOptions::read_only`): reads go to the real files
/// (opened for reading only), writes stay in memory. Recovery and the engine run
/// unchanged on top of it (a torn tail cut off, a crashed delivery's failure recorded, a
/// segment created for appends), and nothing reaches the store directory: a store on a
/// read-only file system can be opened, and one that another process may own is not touched.
/// A file is copied into memory at its first write (the journal's tail segment; a created file
/// starts there); removals and renames are remembered, not done.
#[derive(Default)]
pub(crate) struct Overlay {
    state: std::sync::Mutex<OverlayState>,
}

#[derive(Default)]
struct OverlayState {
    /// Every file opened or created through the overlay, by path: one handle per path, so that
    /// two opens of a file see each other's writes.
    files: std::collections::HashMap<PathBuf, Arc<OverlayFile>>,
    /// Real files removed (or renamed away) in the overlay.
    removed: std::collections::HashSet<PathBuf>,
}

/// A file of the overlay: the file below until its first write, its bytes in memory after.
struct OverlayFile {
    base: Option<Arc<dyn VFile>>,
    copy: std::sync::Mutex<Option<Vec<u8>>>,
}

impl Overlay {
    fn state(&self) -> std::sync::MutexGuard<'_, OverlayState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Opens the real file `path` for reading only (`RealFs::open` opens for writing, which a
/// read-only file system refuses).
fn open_read_only(path: &Path) -> io::Result<Arc<dyn VFile>> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)?;
    Ok(Arc::new(ReadOnlyFile(RealFile(f))))
}

/// A real file opened for reading only: its writes fail (the overlay never makes any).
struct ReadOnlyFile(RealFile);

impl VFile for ReadOnlyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_at(buf, offset)
    }
    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EROFS))
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn allocate(&self, _: u64) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EROFS))
    }
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(io::Error::from_raw_os_error(libc::EROFS))
    }
    fn map(&self, offset: u64, len: u64) -> io::Result<Option<Mapped>> {
        self.0.map(offset, len)
    }
}

impl OverlayFile {
    fn copy(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        self.copy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file's bytes in memory, copied from the file below at the first write.
    fn edit<T>(&self, f: impl FnOnce(&mut Vec<u8>) -> T) -> io::Result<T> {
        let mut copy = self.copy();
        if copy.is_none() {
            let mut bytes = Vec::new();
            if let Some(b) = &self.base {
                let n = usize::try_from(b.len()?)
                    .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
                bytes.resize(n, 0);
                b.read_at(&mut bytes, 0)?;
            }
            *copy = Some(bytes);
        }
        Ok(f(copy.as_mut().expect("set above")))
    }
}

fn resize(bytes: &mut Vec<u8>, len: u64) -> io::Result<()> {
    let n = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
    bytes.resize(n, 0);
    Ok(())
}

impl VFile for OverlayFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let copy = self.copy();
        let Some(bytes) = copy.as_ref() else {
            drop(copy);
            return match &self.base {
                Some(b) => b.read_at(buf, offset),
                None => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            };
        };
        let from = usize::try_from(offset).unwrap_or(usize::MAX);
        match from
            .checked_add(buf.len())
            .and_then(|end| bytes.get(from..end))
        {
            Some(b) => {
                buf.copy_from_slice(b);
                Ok(())
            }
            None => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        }
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.edit(|bytes| {
            let end = offset
                .checked_add(buf.len() as u64)
                .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
            if (bytes.len() as u64) < end {
                resize(bytes, end)?;
            }
            let from = offset as usize;
            bytes[from..from + buf.len()].copy_from_slice(buf);
            Ok(())
        })?
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        // As fallocate(2) with mode 0: the file grows to `len`, never shrinks.
        if self.len()? >= len {
            return Ok(());
        }
        self.edit(|bytes| resize(bytes, len))?
    }
    fn len(&self) -> io::Result<u64> {
        if let Some(bytes) = self.copy().as_ref() {
            return Ok(bytes.len() as u64);
        }
        self.base.as_ref().map_or(Ok(0), |b| b.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.edit(|bytes| resize(bytes, len))?
    }
    fn map(&self, offset: u64, len: u64) -> io::Result<Option<Mapped>> {
        // Only the file below is mapped; a copy in memory is read with `read_at`.
        if self.copy().is_some() {
            return Ok(None);
        }
        match &self.base {
            Some(b) => b.map(offset, len),
            None => Ok(None),
        }
    }
}

impl Vfs for Overlay {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn VFile>> {
        let mut st = self.state();
        let below = !st.removed.contains(path) && std::fs::symlink_metadata(path).is_ok();
        if st.files.contains_key(path) || below {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let f = Arc::new(OverlayFile {
            base: None,
            copy: std::sync::Mutex::new(Some(Vec::new())),
        });
        st.removed.remove(path);
        st.files.insert(path.to_path_buf(), f.clone());
        Ok(f)
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn VFile>> {
        Ok(self.open_file(path)?)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state();
        let had = st.files.remove(path).is_some();
        let below = !st.removed.contains(path) && std::fs::symlink_metadata(path).is_ok();
        if !had && !below {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        st.removed.insert(path.to_path_buf());
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let f = self.open_file(from)?;
        let mut st = self.state();
        st.files.remove(from);
        st.removed.insert(from.to_path_buf());
        st.removed.remove(to);
        st.files.insert(to.to_path_buf(), f);
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.state();
        let mut names: Vec<String> = RealFs
            .list(dir)?
            .into_iter()
            .filter(|n| !st.removed.contains(&dir.join(n)))
            .collect();
        for p in st.files.keys() {
            if p.parent() == Some(dir) {
                if let Some(n) = p.file_name().and_then(|n| n.to_str()) {
                    if !names.iter().any(|m| m == n) {
                        names.push(n.to_string());
                    }
                }
            }
        }
        Ok(names)
    }
    fn sync_dir(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }
}

impl Overlay {
    /// The overlay's file at `path`: the one already opened or created there, else the real
    /// file (unless removed in the overlay).
    fn open_file(&self, path: &Path) -> io::Result<Arc<OverlayFile>> {
        let mut st = self.state();
        if let Some(f) = st.files.get(path) {
            return Ok(f.clone());
        }
        if st.removed.contains(path) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        let f = Arc::new(OverlayFile {
            base: Some(open_read_only(path)?),
            copy: std::sync::Mutex::new(None),
        });
        st.files.insert(path.to_path_buf(), f.clone());
        Ok(f)
    }
}
