//! Ports for a cluster of processes on this host, held free from the moment they are chosen
//! until a replica started seconds later binds them.
//!
//! A port the kernel hands out for `bind(0)` lies in the ephemeral range, where every outgoing
//! connection also gets its local port: between the choice and a late replica's bind, a peer's
//! connection can take it (CI saw `Address already in use` on the seventh replica). So ports
//! come from outside that range, and each is held by a lock on its byte of one lock file for
//! as long as the reservation lives, so two clusters on one host (tests run in parallel, in one
//! process or several) never choose the same port. Open-file-description locks conflict
//! between any two opens of the file and go away with the process, so nothing is left stale.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::ops::RangeInclusive;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// The lowest port handed out: below it lie the well-known and most-used registered ports.
const LOWEST: u16 = 10_000;

/// Ports chosen for one cluster; they stay reserved until this is dropped.
pub struct PortReservation {
    ports: Vec<u16>,
    /// Holds the locks: they belong to this open of the lock file.
    _lock_file: File,
}

impl PortReservation {
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }
}

/// `count` ports on 127.0.0.1, outside the ephemeral range, that no other reservation on this
/// host holds and nothing is bound to now.
pub fn reserve(count: usize) -> Result<PortReservation, String> {
    let path = lock_path();
    let lock_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let candidates = candidates(&ephemeral_range())?;
    let start = start_offset() % candidates.len();
    let ports: Vec<u16> = (0..candidates.len())
        .map(|i| candidates[(start + i) % candidates.len()])
        .filter(|&port| lock_byte(&lock_file, port) && bindable(port))
        .take(count)
        .collect();
    if ports.len() < count {
        return Err(format!(
            "only {} of {count} free ports outside the ephemeral range",
            ports.len()
        ));
    }
    Ok(PortReservation {
        ports,
        _lock_file: lock_file,
    })
}

fn lock_path() -> PathBuf {
    std::env::temp_dir().join("ccbft-local-ports.lock")
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), Linux's default if it
/// cannot be read.
fn ephemeral_range() -> RangeInclusive<u16> {
    let text =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut bounds = text
        .split_whitespace()
        .filter_map(|v| v.parse::<u16>().ok());
    match (bounds.next(), bounds.next()) {
        (Some(low), Some(high)) if low <= high => low..=high,
        _ => 32_768..=60_999,
    }
}

/// Every port from [`LOWEST`] up that is not ephemeral.
fn candidates(ephemeral: &RangeInclusive<u16>) -> Result<Vec<u16>, String> {
    let ports: Vec<u16> = (LOWEST..=u16::MAX)
        .filter(|port| !ephemeral.contains(port))
        .collect();
    if ports.is_empty() {
        return Err(format!(
            "the ephemeral port range {}-{} leaves no port from {LOWEST} up for local replicas",
            ephemeral.start(),
            ephemeral.end()
        ));
    }
    Ok(ports)
}

/// Where this process starts looking, so that clusters started together do not all contend
/// for the same first ports.
fn start_offset() -> usize {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize);
    nanos ^ (std::process::id() as usize).wrapping_mul(2_654_435_761)
}

/// Takes the write lock on byte `port` of the lock file, without waiting; false if another
/// reservation holds it.
fn lock_byte(file: &File, port: u16) -> bool {
    // SAFETY: a zeroed flock is a valid value of the plain C struct; its fields are set below.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = libc::off_t::from(port);
    lock.l_len = 1;
    // SAFETY: the descriptor is open for the call's duration and `lock` is a valid flock.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &lock) == 0 }
}

/// Whether something on this host is bound to `port` now (a daemon, a cluster that does not
/// reserve its ports). A std bind (`SO_REUSEADDR`, no `SO_REUSEPORT`) is exactly how the
/// node's listeners bind (`ccbft_net`'s `listen`), so a port that passes here binds there.
fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_lie_outside_the_ephemeral_range_and_are_distinct() {
        let reservation = reserve(40).unwrap();
        let ephemeral = ephemeral_range();
        let ports = reservation.ports();
        assert_eq!(ports.len(), 40);
        assert!(ports.iter().all(|p| *p >= LOWEST && !ephemeral.contains(p)));
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), 40);
    }

    #[test]
    fn two_reservations_held_together_share_no_port() {
        let first = reserve(30).unwrap();
        let second = reserve(30).unwrap();
        assert!(first.ports().iter().all(|p| !second.ports().contains(p)));
    }

    #[test]
    fn a_locked_byte_is_refused_to_another_open_until_the_first_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.path().join("lock"))
                .unwrap()
        };
        let (holder, other) = (open(), open());
        assert!(lock_byte(&holder, 20_000));
        assert!(
            !lock_byte(&other, 20_000),
            "held by the first open, even in this process"
        );
        assert!(lock_byte(&other, 20_001), "one byte is one port");
        drop(holder);
        assert!(
            lock_byte(&other, 20_000),
            "released when the holder is closed"
        );
    }

    #[test]
    fn a_bound_port_is_not_offered() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        assert!(!bindable(listener.local_addr().unwrap().port()));
    }

    #[test]
    fn an_ephemeral_range_covering_every_port_is_refused() {
        assert!(candidates(&(1..=u16::MAX)).is_err());
        assert_eq!(candidates(&(1..=60_999)).unwrap()[0], 61_000);
    }
}
