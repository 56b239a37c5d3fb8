//! Threshold ECDSA figures for 7 parties (5-of-7): safe-prime generation, aux info, keygen,
//! presign and sign, wall time and CPU time (all threads of the process, from
//! `/proc/self/task/*/schedstat`), and the bytes each party sends (JSON encoding of each
//! message, a broadcast counted once per recipient).
//!
//! `cargo run --release -p ccbft-crypto --example ecdsa_figures [-- --write-fixtures DIR]`
//!
//! With `--write-fixtures DIR` it also writes the primes and the aux info it generated
//! (`ecdsa-primes-7.json`, `ecdsa-aux-7.json`), the test data of `crypto/tests/ecdsa.rs`.

use ccbft_crypto::ecdsa::delivery::Traffic;
use ccbft_crypto::ecdsa::{protocol, Primes};
use std::time::Instant;

const PARTIES: u16 = 7;
const THRESHOLD: u16 = 5;

fn cpu_ns() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task")
        .expect("procfs")
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

fn timed<T>(name: &str, op: impl FnOnce() -> T) -> T {
    let (cpu0, wall0) = (cpu_ns(), Instant::now());
    let out = op();
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = (cpu_ns() - cpu0) as f64 / 1e9;
    println!("| {name} | {wall:.2} s | {cpu:.2} s |");
    out
}

fn traffic(name: &str, t: &Traffic) {
    println!(
        "{name}: messages per party {:?}; bytes per party {:?}",
        t.messages, t.bytes
    );
}

fn main() {
    let fixtures = std::env::args()
        .skip_while(|a| a != "--write-fixtures")
        .nth(1)
        .map(std::path::PathBuf::from);
    println!("| step (7 parties, in one process) | wall | CPU |\n|---|---|---|");
    let mut rng = rand_core::OsRng;
    let primes: Vec<Primes> = timed("safe primes, 7 pairs of 1536 bits", || {
        (0..PARTIES)
            .map(|i| {
                let p = Primes::generate(&mut rng);
                eprintln!("primes for party {i} done");
                p
            })
            .collect()
    });
    let primes_json = serde_json::to_string(&primes).expect("primes encode");
    let (aux, aux_traffic) = timed("aux info", || {
        protocol::aux_info(b"figures aux", primes).expect("aux info")
    });
    let (incomplete, keygen_traffic) = timed("keygen 5-of-7", || {
        protocol::keygen(b"figures keygen", THRESHOLD, PARTIES).expect("keygen")
    });
    let shares = protocol::complete(incomplete, aux.clone()).expect("complete");
    let signers: Vec<_> = shares.iter().take(usize::from(THRESHOLD)).collect();
    let digest = [0x5a; 32];
    let (presignatures, presign_traffic) = timed("presign (5 signers)", || {
        protocol::presign(b"figures presign", &signers).expect("presign")
    });
    let group = ccbft_crypto::ecdsa::GroupKey::of_share(&shares[0]);
    timed(
        "online sign: 5 partial signatures + combine + verify",
        || {
            let partials: Vec<_> = presignatures
                .into_iter()
                .map(|p| protocol::partial_sign(p, &digest))
                .collect();
            protocol::combine(&group, &digest, &partials).expect("signature")
        },
    );
    let (_, sign_traffic) = timed("sign (presign + online, 5 signers)", || {
        protocol::sign(b"figures sign", &signers, &digest).expect("sign")
    });
    traffic("aux info", &aux_traffic);
    traffic("keygen", &keygen_traffic);
    traffic("presign", &presign_traffic);
    traffic("sign", &sign_traffic);
    if let Some(dir) = fixtures {
        std::fs::create_dir_all(&dir).expect("fixture dir");
        std::fs::write(dir.join("ecdsa-primes-7.json"), primes_json).expect("write primes");
        let aux_json = serde_json::to_string(&aux).expect("aux encode");
        std::fs::write(dir.join("ecdsa-aux-7.json"), aux_json).expect("write aux");
        println!("fixtures written to {}", dir.display());
    }
}
