//! The storage seam under a change log: an append-only byte store with a durability barrier.
//!
//! [`FileStorage`] is the real thing. [`MemStorage`] keeps the bytes in memory with two images,
//! *live* (what reads see) and *durable* (what survives a power cut: the bytes as of the last
//! completed sync), and can fail writes or syncs on demand: crash tests, the fuzz target and
//! hosts' own tests run the log on it.

use std::fs::File;
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex, MutexGuard};

/// An append-only byte store with a durability barrier. `Sync` so that a sealed log's pieces
/// can be read on several threads at once (shipping reads them in parallel).
pub trait LogStorage: Send + Sync {
    /// Current length in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Fills `buf` from byte `pos`; reading past the end is an `UnexpectedEof` error.
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Appends all of `bufs`, in order, at the end.
    fn append(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<()>;
    /// Makes every appended byte durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the store to `len` bytes and makes that durable.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// A log file on a file system.
#[derive(Debug)]
pub struct FileStorage {
    file: File,
    len: u64,
}

impl FileStorage {
    /// Wraps a file opened for reading and writing; appends go to its end. (Not `O_APPEND`:
    /// this handle is the only writer, and plain writes at a known position are cheaper.)
    pub fn new(mut file: File) -> io::Result<Self> {
        let len = file.seek(SeekFrom::End(0))?;
        Ok(FileStorage { file, len })
    }
}

impl LogStorage for FileStorage {
    fn size(&self) -> io::Result<u64> {
        Ok(self.len)
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        read_exact_at(&self.file, pos, buf)
    }

    fn append(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<()> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut storage: Vec<IoSlice<'_>> =
            bufs.iter().filter(|b| !b.is_empty()).copied().collect();
        let mut slices = &mut storage[..];
        // The file position is kept at the end: `new` and `truncate` put it there.
        while !slices.is_empty() {
            match self.file.write_vectored(slices) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the log file accepted no bytes",
                    ));
                }
                Ok(n) => IoSlice::advance_slices(&mut slices, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.len += total as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.sync_all()?;
        self.file.seek(SeekFrom::Start(len))?;
        self.len = len;
        Ok(())
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, pos: u64, buf: &mut [u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, pos)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut pos: u64, mut buf: &mut [u8]) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, pos) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An in-memory store with a live and a durable image and injectable failures. Clones share
/// the same bytes, so a test keeps one clone while the log owns another.
#[derive(Debug, Clone, Default)]
pub struct MemStorage {
    state: Arc<Mutex<MemState>>,
}

#[derive(Debug, Default)]
struct MemState {
    live: Vec<u8>,
    /// Length of the prefix of `live` that a completed sync made durable.
    durable: usize,
    /// Appends fail once this many more bytes have been accepted (the bytes before the limit
    /// are kept, as a short write would).
    fail_after: Option<usize>,
    fail_sync: bool,
}

impl MemStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `bytes`, all durable.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let durable = bytes.len();
        MemStorage {
            state: Arc::new(Mutex::new(MemState {
                live: bytes,
                durable,
                ..MemState::default()
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, MemState> {
        // A panic while holding the lock leaves plain bytes behind; keep using them.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What reads see now.
    pub fn live(&self) -> Vec<u8> {
        self.state().live.clone()
    }

    /// What a power cut now would leave: the bytes as of the last completed sync.
    pub fn durable(&self) -> Vec<u8> {
        let s = self.state();
        s.live[..s.durable].to_vec()
    }

    /// What a power cut would leave if the device had also written the first `extra` bytes
    /// appended since the last sync (writes reach the media in order).
    pub fn power_cut(&self, extra: usize) -> Vec<u8> {
        let s = self.state();
        let end = s.durable.saturating_add(extra).min(s.live.len());
        s.live[..end].to_vec()
    }

    /// Makes appends fail after `n` more bytes are accepted.
    pub fn fail_writes_after(&self, n: usize) {
        self.state().fail_after = Some(n);
    }

    /// Makes every sync from now on fail.
    pub fn fail_syncs(&self) {
        self.state().fail_sync = true;
    }
}

impl LogStorage for MemStorage {
    fn size(&self) -> io::Result<u64> {
        Ok(self.state().live.len() as u64)
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<()> {
        let s = self.state();
        let start =
            usize::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| s.live.get(start..end))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn append(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<()> {
        let mut s = self.state();
        for b in bufs {
            match s.fail_after {
                Some(left) if b.len() > left => {
                    s.live.extend_from_slice(&b[..left]);
                    s.fail_after = Some(0);
                    return Err(io::Error::other("injected write failure"));
                }
                Some(left) => s.fail_after = Some(left - b.len()),
                None => {}
            }
            s.live.extend_from_slice(b);
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut s = self.state();
        if s.fail_sync {
            return Err(io::Error::other("injected sync failure"));
        }
        s.durable = s.live.len();
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.state();
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        s.live.truncate(len);
        s.durable = s.live.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_storage_images_and_failures() {
        let mut m = MemStorage::new();
        m.append(&[IoSlice::new(b"abc"), IoSlice::new(b"de")])
            .unwrap();
        m.sync().unwrap();
        m.append(&[IoSlice::new(b"fgh")]).unwrap();
        assert_eq!(m.live(), b"abcdefgh");
        assert_eq!(m.durable(), b"abcde");
        assert_eq!(m.power_cut(2), b"abcdefg");
        let mut buf = [0u8; 3];
        m.read_at(5, &mut buf).unwrap();
        assert_eq!(&buf, b"fgh");
        assert!(m.read_at(6, &mut buf).is_err());
        m.fail_writes_after(1);
        assert!(m.append(&[IoSlice::new(b"xy")]).is_err());
        assert_eq!(m.live(), b"abcdefghx");
        m.fail_syncs();
        assert!(m.sync().is_err());
        m.truncate(4).unwrap();
        assert_eq!(m.durable(), b"abcd");
    }

    #[test]
    fn file_storage_appends_reads_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .unwrap();
        let mut f = FileStorage::new(file).unwrap();
        f.append(&[IoSlice::new(b"hello "), IoSlice::new(b"world")])
            .unwrap();
        f.sync().unwrap();
        assert_eq!(f.size().unwrap(), 11);
        let mut buf = [0u8; 5];
        f.read_at(6, &mut buf).unwrap();
        assert_eq!(&buf, b"world");
        f.truncate(5).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        f.append(&[IoSlice::new(b"!")]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello!");
    }
}
