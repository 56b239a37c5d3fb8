//! The one way this crate opens a listening socket.
//!
//! glommio's `TcpListener::bind` sets `SO_REUSEPORT` and not `SO_REUSEADDR`. That has two
//! faults for a replica: a second process started on the same address silently shares the
//! port (the kernel splits connections between them), and the bind fails with `Address
//! already in use` while any connection that a `SO_REUSEADDR` socket on that port left in
//! TIME_WAIT lingers (for example the control plane of a replica that ran there a minute
//! before, or any std server). CI saw the second: three replicas of a fresh local cluster
//! refused to start although the port check, a std bind, had found their ports free. So
//! every listener here is a std listener (`SO_REUSEADDR`, the usual server setting, and no
//! `SO_REUSEPORT`), handed to glommio.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};

/// A glommio listener on `addr` that a lingering TIME_WAIT does not block and no other
/// socket can share. Call it on the executor that will accept on it.
#[allow(unsafe_code)]
pub(crate) fn listen(addr: SocketAddr) -> std::io::Result<glommio::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    let fd = listener.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket that `into_raw_fd` just gave up, so the
    // glommio listener becomes its only owner and closes it once.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    /// Leaves a connection in TIME_WAIT on a port a std server (`SO_REUSEADDR`) listened on,
    /// and returns the port once the kernel shows it.
    fn port_with_a_time_wait() -> u16 {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut accepted, _) = server.accept().unwrap();
        accepted.write_all(b"bye").unwrap();
        drop(accepted); // the server closes first: its side ends in TIME_WAIT
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        drop(client);
        drop(server);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !time_wait_on(port) {
            assert!(Instant::now() < deadline, "no TIME_WAIT on port {port}");
            std::thread::sleep(Duration::from_millis(10));
        }
        port
    }

    /// Whether /proc/net/tcp shows a socket with local port `port` in TIME_WAIT (state 06).
    fn time_wait_on(port: u16) -> bool {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let local = format!(":{port:04X} ");
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3 && format!("{} ", fields[1]).ends_with(&local) && fields[3] == "06"
        })
    }

    fn on_executor<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
        crate::executor_builder("listen-test")
            .spawn(move || async move { work() })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn a_time_wait_left_by_another_server_does_not_block_the_listener() {
        let port = port_with_a_time_wait();
        let result = on_executor(move || {
            listen(SocketAddr::from(([127, 0, 0, 1], port))).map(|l| l.local_addr().unwrap())
        });
        assert_eq!(result.unwrap().port(), port);
    }

    #[test]
    fn a_second_listener_on_a_held_port_is_refused() {
        let second = on_executor(|| {
            let first = listen(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
            listen(first.local_addr().unwrap()).map(|_| ())
        });
        let error = second.expect_err("two listeners shared one port");
        assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
    }
}
