//! The small file layer the write-ahead log does its I/O through, so a fault-injecting
//! layer (`crate::faulty`) can sit beside the real one in tests. The real layer is glommio
//! DMA files (O_DIRECT over io_uring) for every write, read of the active segment and
//! fdatasync; std for directory operations; memory maps for reading sealed segments.

use crate::format::BLOCK_SIZE_BYTES;
use glommio::io::{DmaFile, OpenOptions};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;

pub type IoFuture<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + 'a>>;

/// An open log file.
pub trait LogFile {
    /// Writes `bytes` at `offset`; both are multiples of `BLOCK_SIZE_BYTES` (O_DIRECT).
    fn write_at<'a>(&'a self, offset: u64, bytes: &'a [u8]) -> IoFuture<'a, ()>;
    /// Reads up to `len` bytes at `offset` (fewer at the end of the file).
    fn read_at(&self, offset: u64, len: usize) -> IoFuture<'_, Vec<u8>>;
    fn fdatasync(&self) -> IoFuture<'_, ()>;
}

/// What the recovery scanner needs: a listing and whole-file reads.
pub trait ScanSource {
    fn location(&self) -> &Path;
    fn list(&self) -> io::Result<Vec<String>>;
    fn read_whole(&self, name: &str) -> io::Result<Vec<u8>>;
}

/// A log directory.
pub trait LogDir: ScanSource {
    /// Creates `name` empty (replacing any file of that name) and opens it.
    fn create<'a>(&'a self, name: &'a str) -> IoFuture<'a, Rc<dyn LogFile>>;
    fn open<'a>(&'a self, name: &'a str) -> IoFuture<'a, Rc<dyn LogFile>>;
    /// Creates `name` (replacing any file of that name) holding `bytes`, synced. The real
    /// layer does this with buffered I/O: it runs before the first DMA file of a new log is
    /// opened, and a DMA open of an empty new file would misfire glommio's IOPOLL probe.
    fn write_file(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Reads a sealed (never again written) file's bytes.
    fn read_sealed(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Sets the length of a file; durable with the file's next fdatasync.
    fn set_len(&self, name: &str, len: u64) -> io::Result<()>;
    /// fsync of the directory: creates, renames and removes so far are durable after it.
    fn sync_dir(&self) -> io::Result<()>;
    /// Glommio's IOPOLL pitfall (see wal.rs): on the real disk, opens the non-empty head
    /// file first and reads it back. Nothing to do elsewhere.
    fn probe<'a>(&'a self, _head: &'a str, _len: usize) -> IoFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
}

/// The real disk.
pub struct RealDir {
    path: PathBuf,
    maps: RefCell<HashMap<String, Rc<memmap2::Mmap>>>,
}

impl RealDir {
    pub fn new(path: &Path) -> RealDir {
        RealDir {
            path: path.to_path_buf(),
            maps: RefCell::new(HashMap::new()),
        }
    }
}

/// A glommio DMA file.
pub struct RealFile {
    file: DmaFile,
}

fn glommio_io<T>(err: glommio::GlommioError<T>) -> io::Error {
    err.into()
}

impl LogFile for RealFile {
    fn write_at<'a>(&'a self, offset: u64, bytes: &'a [u8]) -> IoFuture<'a, ()> {
        Box::pin(async move {
            assert!(offset.is_multiple_of(BLOCK_SIZE_BYTES));
            assert!((bytes.len() as u64).is_multiple_of(BLOCK_SIZE_BYTES));
            let mut buffer = self.file.alloc_dma_buffer(bytes.len());
            buffer.as_bytes_mut().copy_from_slice(bytes);
            let written = self
                .file
                .write_at(buffer, offset)
                .await
                .map_err(glommio_io)?;
            if written != bytes.len() {
                return Err(io::Error::other(format!(
                    "short write: {written} of {} bytes",
                    bytes.len()
                )));
            }
            Ok(())
        })
    }

    fn read_at(&self, offset: u64, len: usize) -> IoFuture<'_, Vec<u8>> {
        Box::pin(async move {
            let read = self.file.read_at(offset, len).await.map_err(glommio_io)?;
            Ok(read.to_vec())
        })
    }

    fn fdatasync(&self) -> IoFuture<'_, ()> {
        Box::pin(async move { self.file.fdatasync().await.map_err(glommio_io) })
    }
}

impl ScanSource for RealDir {
    fn location(&self) -> &Path {
        &self.path
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn read_whole(&self, name: &str) -> io::Result<Vec<u8>> {
        crate::uring_read::read_file(&self.path.join(name))
    }
}

impl LogDir for RealDir {
    fn create<'a>(&'a self, name: &'a str) -> IoFuture<'a, Rc<dyn LogFile>> {
        Box::pin(async move {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .dma_open(self.path.join(name))
                .await
                .map_err(glommio_io)?;
            Ok(Rc::new(RealFile { file }) as Rc<dyn LogFile>)
        })
    }

    fn open<'a>(&'a self, name: &'a str) -> IoFuture<'a, Rc<dyn LogFile>> {
        Box::pin(async move {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .dma_open(self.path.join(name))
                .await
                .map_err(glommio_io)?;
            Ok(Rc::new(RealFile { file }) as Rc<dyn LogFile>)
        })
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path.join(name))?;
        file.write_all(bytes)?;
        file.sync_all()
    }

    fn read_sealed(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let map = {
            let mut maps = self.maps.borrow_mut();
            match maps.get(name) {
                Some(map) => map.clone(),
                None => {
                    let file = std::fs::File::open(self.path.join(name))?;
                    // SAFETY: sealed segments are never written again; they are only
                    // removed (`remove`), which drops this map first.
                    let map = Rc::new(unsafe { memmap2::Mmap::map(&file) }?);
                    maps.insert(name.to_string(), map.clone());
                    map
                }
            }
        };
        let start = (offset as usize).min(map.len());
        let end = start.saturating_add(len).min(map.len());
        Ok(map[start..end].to_vec())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.maps.borrow_mut().remove(to);
        std::fs::rename(self.path.join(from), self.path.join(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        self.maps.borrow_mut().remove(name);
        std::fs::remove_file(self.path.join(name))
    }

    fn set_len(&self, name: &str, len: u64) -> io::Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.path.join(name))?
            .set_len(len)
    }

    fn sync_dir(&self) -> io::Result<()> {
        std::fs::File::open(&self.path)?.sync_all()
    }

    fn probe<'a>(&'a self, head: &'a str, len: usize) -> IoFuture<'a, ()> {
        Box::pin(async move {
            let file = DmaFile::open(self.path.join(head))
                .await
                .map_err(glommio_io)?;
            let result = file.read_at(0, len).await;
            let _ = file.close().await;
            let read = result.map_err(glommio_io)?;
            if read.len() != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("read {} of {len} bytes", read.len()),
                ));
            }
            Ok(())
        })
    }
}
