//! Synchronous whole-file reads through the `io-uring` crate, for the recovery scanner and
//! the inspect tool. glommio needs an executor and DMA alignment; a scanner that runs once
//! at startup (or from a CLI) wants a plain blocking call, with several reads in flight.

use io_uring::{opcode, types, IoUring};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// Bytes per read request.
pub const READ_CHUNK_SIZE_BYTES: u64 = 1 << 20;
/// Read requests in flight at once.
pub const READ_QUEUE_DEPTH_MAX: u32 = 8;
/// Largest file this reader will load (a segment is at most 1 GiB).
pub const READ_FILE_SIZE_MAX_BYTES: u64 = 1 << 30;

const _: () = assert!(READ_CHUNK_SIZE_BYTES <= u32::MAX as u64);
const _: () = assert!(READ_FILE_SIZE_MAX_BYTES >= crate::format::SEGMENT_SIZE_MAX_BYTES);

/// Reads the whole file at `path` into memory.
pub fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len > READ_FILE_SIZE_MAX_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} is {len} bytes, above the {READ_FILE_SIZE_MAX_BYTES} byte limit",
                path.display()
            ),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    let chunks = len.div_ceil(READ_CHUNK_SIZE_BYTES);
    // done[i] = bytes of chunk i read so far.
    let mut done = vec![0u64; chunks as usize];
    let mut ring = IoUring::new(READ_QUEUE_DEPTH_MAX)?;
    let mut next_chunk = 0u64;
    let mut in_flight = 0u32;
    let fd = types::Fd(file.as_raw_fd());
    let chunk_len = |i: u64| READ_CHUNK_SIZE_BYTES.min(len - i * READ_CHUNK_SIZE_BYTES);
    let mut pending_retry: Vec<u64> = Vec::new();
    while next_chunk < chunks || in_flight > 0 || !pending_retry.is_empty() {
        while in_flight < READ_QUEUE_DEPTH_MAX {
            let chunk = match pending_retry.pop() {
                Some(chunk) => chunk,
                None if next_chunk < chunks => {
                    next_chunk += 1;
                    next_chunk - 1
                }
                None => break,
            };
            let offset = chunk * READ_CHUNK_SIZE_BYTES + done[chunk as usize];
            let remaining = chunk_len(chunk) - done[chunk as usize];
            assert!(remaining > 0);
            // SAFETY: the slice lives in `buf`, which outlives the ring's use of it: every
            // submitted read is completed (reaped below) before this function returns.
            let ptr = unsafe { buf.as_mut_ptr().add(offset as usize) };
            let entry = opcode::Read::new(fd, ptr, remaining as u32)
                .offset(offset)
                .build()
                .user_data(chunk);
            // SAFETY: as above; the queue has room because in_flight < depth.
            unsafe { ring.submission().push(&entry) }
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
            in_flight += 1;
        }
        ring.submit_and_wait(1)?;
        let completions: Vec<(u64, i32)> = ring
            .completion()
            .map(|cqe| (cqe.user_data(), cqe.result()))
            .collect();
        for (chunk, result) in completions {
            in_flight -= 1;
            if result < 0 {
                // Drain the others so no read still targets `buf`, then fail.
                drain(&mut ring, in_flight)?;
                return Err(io::Error::from_raw_os_error(-result));
            }
            if result == 0 {
                drain(&mut ring, in_flight)?;
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} shrank while being read", path.display()),
                ));
            }
            done[chunk as usize] += result as u64;
            assert!(done[chunk as usize] <= chunk_len(chunk));
            if done[chunk as usize] < chunk_len(chunk) {
                pending_retry.push(chunk);
            }
        }
    }
    for chunk in 0..chunks {
        assert_eq!(done[chunk as usize], chunk_len(chunk));
    }
    Ok(buf)
}

fn drain(ring: &mut IoUring, mut in_flight: u32) -> io::Result<()> {
    while in_flight > 0 {
        ring.submit_and_wait(1)?;
        in_flight -= ring.completion().count() as u32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_of_odd_sizes() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 1, 4095, 3 * (1 << 20) + 17] {
            let path = dir.path().join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            assert_eq!(read_file(&path).unwrap(), data);
        }
        assert!(read_file(&dir.path().join("missing")).is_err());
    }
}
