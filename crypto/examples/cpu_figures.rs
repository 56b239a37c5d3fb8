//! CPU-time figures of the main operations, for a machine shared with other work where
//! criterion's wall-clock times are inflated by waiting for a core. CPU time is read from
//! `/proc/self/task/*/schedstat` (nanoseconds on a CPU, summed over all threads of the
//! process, the verification pool included). Run with
//! `cargo run --release -p ccbft-crypto --example cpu_figures`.

use ccbft_crypto::batch::{verify_batch, BatchItem, VerifyPool};
use ccbft_crypto::bls::{PublicKey, SecretKey, Signature, Tag};
use ccbft_crypto::certificate::{sign_vote, Committee};
use ccbft_crypto::client::{self, ClientPublicKey, ClientSignature, ClientSigningKey};
use ccbft_crypto::dkg;
use ccbft_crypto::hybrid::HybridSecretKey;
use ccbft_crypto::threshold::{combine_unchecked, PartialSignature, ThresholdParams};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// CPU nanoseconds of all threads of this process.
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

/// Runs `op` until at least `budget` of CPU time is used (and 3 times at least); prints CPU
/// time and wall time per operation.
/// `CPU_FIGURES_ONLY=a,b`: measure only the operations whose name contains one of the
/// comma-separated words (the others are skipped).
fn measure(name: &str, budget: Duration, mut op: impl FnMut()) {
    if let Ok(only) = std::env::var("CPU_FIGURES_ONLY") {
        if !only.split(',').any(|w| name.contains(w)) {
            return;
        }
    }
    op(); // warm-up
    let (cpu0, wall0) = (cpu_ns(), Instant::now());
    let mut iterations = 0u64;
    while iterations < 3 || cpu_ns() - cpu0 < budget.as_nanos() as u64 {
        op();
        iterations += 1;
    }
    let cpu = (cpu_ns() - cpu0) as f64 / iterations as f64;
    let wall = wall0.elapsed().as_nanos() as f64 / iterations as f64;
    println!(
        "| {name} | {iterations} | {} | {} |",
        human(cpu),
        human(wall)
    );
}

fn human(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} µs", ns / 1e3)
    }
}

fn secret(i: usize) -> SecretKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    SecretKey::from_seed(&seed)
}

fn main() {
    let budget = Duration::from_secs(2);
    println!("| operation | iterations | CPU time per op (all threads) | wall time per op |");
    println!("|---|---|---|---|");
    let sk = secret(1);
    let pk = sk.public_key();
    let msg = [7u8; 64];
    let sig = sk.sign(Tag::GlobalVote, &msg);
    measure("bls sign", budget, || {
        black_box(sk.sign(Tag::GlobalVote, black_box(&msg)));
    });
    measure("bls verify", budget, || {
        pk.verify(Tag::GlobalVote, black_box(&msg), &sig).unwrap()
    });
    for n in [7usize, 21, 49] {
        let sks: Vec<SecretKey> = (0..n).map(secret).collect();
        let members = sks
            .iter()
            .map(|s| (s.public_key(), s.proof_of_possession()))
            .collect();
        let committee = Committee::new(1, members).unwrap();
        let q = (n + (n - 1) / 3 + 1).div_ceil(2);
        let mut b = committee.certificate_builder(Tag::GlobalVote, &msg);
        for (i, s) in sks.iter().enumerate().take(q) {
            b.add_vote(i, sign_vote(s, 1, Tag::GlobalVote, &msg))
                .unwrap();
        }
        let cert = b.build(q).unwrap();
        measure(
            &format!("certificate verify, n = {n}, q = {q} signers"),
            budget,
            || {
                committee
                    .verify_certificate(Tag::GlobalVote, &msg, &cert, q)
                    .unwrap()
            },
        );
    }
    let sks: Vec<SecretKey> = (0..49).map(secret).collect();
    let msgs: Vec<Vec<u8>> = (0..1000)
        .map(|i| format!("vote {i}").into_bytes())
        .collect();
    let sigs: Vec<Signature> = (0..1000)
        .map(|i| sks[i % 49].sign(Tag::GlobalVote, &msgs[i]))
        .collect();
    let pks: Vec<PublicKey> = (0..1000).map(|i| sks[i % 49].public_key()).collect();
    let items: Vec<BatchItem<'_>> = (0..1000)
        .map(|i| (msgs[i].as_slice(), &sigs[i], &pks[i], Tag::GlobalVote))
        .collect();
    for threads in [1, 2] {
        let pool = VerifyPool::new(threads).unwrap();
        measure(
            &format!("BLS batch verify 1000 votes, {threads} thread(s)"),
            budget,
            || verify_batch(&pool, &items).unwrap(),
        );
    }
    measure("BLS verify 1000 votes one by one", budget, || {
        for (m, s, p, t) in &items {
            p.verify(*t, m, s).unwrap();
        }
    });
    let mut bad_sigs = sigs.clone();
    bad_sigs[613] = sigs[612];
    let bad_items: Vec<BatchItem<'_>> = (0..1000)
        .map(|i| (msgs[i].as_slice(), &bad_sigs[i], &pks[i], Tag::GlobalVote))
        .collect();
    let pool = VerifyPool::new(2).unwrap();
    measure(
        "BLS batch 1000 with 1 bad, find it (2 threads)",
        budget,
        || assert_eq!(verify_batch(&pool, &bad_items), Err(vec![613])),
    );

    let keys: Vec<ClientSigningKey> = (0..50u8)
        .map(|i| ClientSigningKey::from_seed(&[i; 32]))
        .collect();
    let cpks: Vec<ClientPublicKey> = (0..1000).map(|i| keys[i % 50].public_key()).collect();
    let csigs: Vec<ClientSignature> = (0..1000).map(|i| keys[i % 50].sign(&msgs[i])).collect();
    let citems: Vec<client::ClientBatchItem<'_>> = (0..1000)
        .map(|i| (msgs[i].as_slice(), &csigs[i], &cpks[i]))
        .collect();
    for threads in [1, 2] {
        let pool = VerifyPool::new(threads).unwrap();
        measure(
            &format!("Ed25519 batch verify 1000, {threads} thread(s)"),
            budget,
            || client::verify_batch(&pool, &citems).unwrap(),
        );
    }
    measure("Ed25519 verify_strict 1000 one by one", budget, || {
        for (m, s, p) in &citems {
            p.verify(m, s).unwrap();
        }
    });
    let raw: Vec<[u8; 64]> = csigs.iter().map(|s| s.to_bytes()).collect();
    measure("Ed25519 strict decode of 1000 signatures", budget, || {
        for r in &raw {
            black_box(ClientSignature::from_bytes(r).unwrap());
        }
    });

    let params = ThresholdParams::new(5, 7).unwrap();
    let report = dkg::run_local(params, [1; 32], &[], &mut |_| {}).unwrap();
    let public = report.outputs[0].public.clone();
    let partials: Vec<PartialSignature> = report
        .outputs
        .iter()
        .map(|o| o.share.sign(Tag::Checkpoint, &msg))
        .collect();
    measure(
        "threshold combine 5-of-7 (interpolation only)",
        budget,
        || {
            black_box(combine_unchecked(params, &partials[..5]).unwrap());
        },
    );
    measure(
        "threshold combine 5-of-7 checked (5 partial verifies + final verify)",
        budget,
        || {
            black_box(
                public
                    .combine(Tag::Checkpoint, &msg, &partials[..5])
                    .unwrap(),
            );
        },
    );
    measure("DKG 5-of-7, all parties in one process", budget, || {
        black_box(dkg::run_local(params, [2; 32], &[], &mut |_| {}).unwrap());
    });
    let hsk = HybridSecretKey::from_seed(&[3; 32]);
    let hpk = hsk.public_key();
    let hsig = hsk.sign(Tag::Checkpoint, &msg);
    measure("hybrid (BLS + ML-DSA-65) sign", budget, || {
        black_box(hsk.sign(Tag::Checkpoint, &msg));
    });
    // ML-DSA signing repeats a rejection loop a message-dependent number of times, so one
    // fixed message gives one arbitrary point of the distribution: average over messages.
    let mut counter = 0u64;
    measure(
        "hybrid (BLS + ML-DSA-65) sign, varying messages",
        budget,
        || {
            counter += 1;
            let mut m = msg.to_vec();
            m.extend_from_slice(&counter.to_le_bytes());
            black_box(hsk.sign(Tag::Checkpoint, &m));
        },
    );
    measure("hybrid (BLS + ML-DSA-65) verify", budget, || {
        hpk.verify(Tag::Checkpoint, &msg, &hsig).unwrap()
    });
}
