//! Read access to a disk image (regular file or block device), mapped or read.
//!
//! The one place in the crate that maps files. A mapped slice never leaves this module: callers
//! get chunks through [`Image::with_chunk`]-style closures only for the duration of a call, and
//! the whole image only as `&[u8]` tied to the `Image`'s lifetime.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Images smaller than this are read into memory instead of mapped.
const MAP_MIN: u64 = 1 << 20;

enum Bytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

/// A disk image opened for reading.
pub(crate) struct Image {
    bytes: Bytes,
    path: PathBuf,
}

impl Image {
    /// Opens `path`. Its length is found by seeking, which also works for block devices.
    pub fn open(path: &Path) -> Result<Image> {
        let mut f = File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                what: format!("image {}", path.display()),
            },
            _ => Error::io("opening the image", Some(path), e),
        })?;
        let len = f
            .seek(SeekFrom::End(0))
            .map_err(|e| Error::io("finding the image's size", Some(path), e))?;
        let bytes = if len < MAP_MIN {
            let mut buf = Vec::with_capacity(len as usize);
            f.seek(SeekFrom::Start(0))
                .map_err(|e| Error::io("reading the image", Some(path), e))?;
            f.read_to_end(&mut buf)
                .map_err(|e| Error::io("reading the image", Some(path), e))?;
            Bytes::Read(buf)
        } else {
            // SAFETY: the map is read-only and private to this value. If another process
            // changes the file while it is mapped, reads see some mix of old and new bytes
            // (never undefined behaviour in practice for a file that is not truncated); that is
            // the documented contract of resync on a live image: hash a snapshot, not a disk in
            // use. A file truncated under the map faults (SIGBUS), as it would for any reader.
            let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(&f) }
                .map_err(|e| Error::io("mapping the image", Some(path), e))?;
            #[cfg(unix)]
            let _ = map.advise(memmap2::Advice::Sequential);
            Bytes::Mapped(map)
        };
        Ok(Image {
            bytes,
            path: path.to_path_buf(),
        })
    }

    /// The image's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(m) => m,
            Bytes::Read(v) => v,
        }
    }

    /// The image's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
