#![allow(dead_code)]
use ccbft_storage::wal::executor_builder;
use std::future::Future;

/// Runs `f` to completion on a fresh glommio executor thread.
pub fn run<T, F, Fut>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    executor_builder("test")
        .spawn(f)
        .expect("spawning an executor")
        .join()
        .expect("executor thread")
}

/// A temporary directory on the real disk (under /tmp, same device as /work here).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ccbft-storage-test-")
        .tempdir_in("/tmp")
        .expect("temp dir")
}
