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
