//! Criterion benches of ccbft-crypto. Run with
//! `cargo bench -p ccbft-crypto --bench crypto -- --warm-up-time 1 --measurement-time 3`.
//! Certificate sizes are printed before the timings (they are exact, not measured).

use ccbft_crypto::batch::{verify_batch, BatchItem, VerifyPool};
use ccbft_crypto::bls::{PublicKey, SecretKey, Signature, Tag, SIGNATURE_BYTES};
use ccbft_crypto::certificate::{sign_vote, Certificate, Committee};
use ccbft_crypto::client::{self, ClientPublicKey, ClientSignature, ClientSigningKey};
use ccbft_crypto::dkg;
use ccbft_crypto::hybrid::HybridSecretKey;
use ccbft_crypto::threshold::{combine_unchecked, PartialSignature, ThresholdParams};
use criterion::{black_box, criterion_group, BenchmarkId, Criterion};

fn secret(i: usize) -> SecretKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    SecretKey::from_seed(&seed)
}

fn committee(n: usize) -> (Vec<SecretKey>, Committee) {
    let sks: Vec<SecretKey> = (0..n).map(secret).collect();
    let members = sks
        .iter()
        .map(|s| (s.public_key(), s.proof_of_possession()))
        .collect();
    (sks, Committee::new(1, members).unwrap())
}

fn quorum(n: usize) -> usize {
    let f = (n - 1) / 3;
    (n + f + 1).div_ceil(2)
}

fn certificate(
    sks: &[SecretKey],
    committee: &Committee,
    signers: usize,
    msg: &[u8],
) -> Certificate {
    let mut b = committee.certificate_builder(Tag::GlobalVote, msg);
    for (i, sk) in sks.iter().enumerate().take(signers) {
        b.add_vote(i, sign_vote(sk, committee.epoch(), Tag::GlobalVote, msg))
            .unwrap();
    }
    b.build(signers).unwrap()
}

fn print_sizes() {
    println!("certificate size vs plain list of signatures (entry = 2-byte signer index + {SIGNATURE_BYTES}-byte signature)");
    println!("n | quorum q | certificate bytes | plain list of q bytes | saving vs q | plain list of n bytes | saving vs n");
    for n in [7usize, 21, 49] {
        let (sks, c) = committee(n);
        let q = quorum(n);
        let cert = certificate(&sks, &c, q, b"size");
        let bytes = cert.to_bytes().len();
        let plain_q = q * (2 + SIGNATURE_BYTES);
        let plain_n = n * (2 + SIGNATURE_BYTES);
        println!(
            "{n} | {q} | {bytes} | {plain_q} | {:.1}% | {plain_n} | {:.1}%",
            100.0 * (1.0 - bytes as f64 / plain_q as f64),
            100.0 * (1.0 - bytes as f64 / plain_n as f64)
        );
    }
}

fn bls(c: &mut Criterion) {
    let sk = secret(1);
    let pk = sk.public_key();
    let msg = [7u8; 64];
    let sig = sk.sign(Tag::GlobalVote, &msg);
    c.bench_function("bls/sign", |b| {
        b.iter(|| sk.sign(Tag::GlobalVote, black_box(&msg)))
    });
    c.bench_function("bls/verify", |b| {
        b.iter(|| pk.verify(Tag::GlobalVote, black_box(&msg), &sig).unwrap())
    });
    let mut group = c.benchmark_group("certificate/verify");
    for n in [7usize, 21, 49] {
        let (sks, com) = committee(n);
        let q = quorum(n);
        let cert = certificate(&sks, &com, q, &msg);
        group.bench_with_input(BenchmarkId::new("quorum_of", n), &n, |b, _| {
            b.iter(|| {
                com.verify_certificate(Tag::GlobalVote, black_box(&msg), &cert, q)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn batch(c: &mut Criterion) {
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
    let mut group = c.benchmark_group("batch_verify_1000_votes");
    group.sample_size(10);
    for threads in [1usize, 2] {
        let pool = VerifyPool::new(threads).unwrap();
        group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, _| {
            b.iter(|| verify_batch(&pool, black_box(&items)).unwrap())
        });
    }
    // One by one, for comparison.
    group.bench_function("one_by_one", |b| {
        b.iter(|| {
            for (m, s, p, t) in &items {
                p.verify(*t, m, s).unwrap();
            }
        })
    });
    group.finish();

    let keys: Vec<ClientSigningKey> = (0..50u8)
        .map(|i| ClientSigningKey::from_seed(&[i; 32]))
        .collect();
    let cpks: Vec<ClientPublicKey> = (0..1000).map(|i| keys[i % 50].public_key()).collect();
    let csigs: Vec<ClientSignature> = (0..1000).map(|i| keys[i % 50].sign(&msgs[i])).collect();
    let citems: Vec<client::ClientBatchItem<'_>> = (0..1000)
        .map(|i| (msgs[i].as_slice(), &csigs[i], &cpks[i]))
        .collect();
    let mut group = c.benchmark_group("ed25519_batch_1000");
    group.sample_size(10);
    for threads in [1usize, 2] {
        let pool = VerifyPool::new(threads).unwrap();
        group.bench_with_input(BenchmarkId::new("threads", threads), &threads, |b, _| {
            b.iter(|| client::verify_batch(&pool, black_box(&citems)).unwrap())
        });
    }
    group.bench_function("one_by_one_verify_strict", |b| {
        b.iter(|| {
            for (m, s, p) in &citems {
                p.verify(m, s).unwrap();
            }
        })
    });
    let raw: Vec<[u8; 64]> = csigs.iter().map(|s| s.to_bytes()).collect();
    group.bench_function("decode_1000_strict", |b| {
        b.iter(|| {
            for r in &raw {
                black_box(ClientSignature::from_bytes(r).unwrap());
            }
        })
    });
    group.finish();
}

fn threshold(c: &mut Criterion) {
    let params = ThresholdParams::new(5, 7).unwrap();
    let report = dkg::run_local(params, [1; 32], &[], &mut |_| {}).unwrap();
    let public = report.outputs[0].public.clone();
    let msg = b"checkpoint";
    let partials: Vec<PartialSignature> = report
        .outputs
        .iter()
        .map(|o| o.share.sign(Tag::Checkpoint, msg))
        .collect();
    c.bench_function("threshold/combine_5_of_7_unchecked", |b| {
        b.iter(|| combine_unchecked(params, black_box(&partials[..5])).unwrap())
    });
    c.bench_function("threshold/combine_5_of_7_checked", |b| {
        b.iter(|| {
            public
                .combine(Tag::Checkpoint, msg, black_box(&partials[..5]))
                .unwrap()
        })
    });
    let mut group = c.benchmark_group("dkg");
    group.sample_size(10);
    group.bench_function("run_local_5_of_7", |b| {
        b.iter(|| dkg::run_local(params, [2; 32], &[], &mut |_| {}).unwrap())
    });
    group.finish();
}

fn hybrid(c: &mut Criterion) {
    let sk = HybridSecretKey::from_seed(&[3; 32]);
    let pk = sk.public_key();
    let msg = [9u8; 64];
    let sig = sk.sign(Tag::Checkpoint, &msg);
    c.bench_function("hybrid/sign", |b| {
        b.iter(|| sk.sign(Tag::Checkpoint, black_box(&msg)))
    });
    c.bench_function("hybrid/verify", |b| {
        b.iter(|| pk.verify(Tag::Checkpoint, black_box(&msg), &sig).unwrap())
    });
}

criterion_group!(benches, bls, batch, threshold, hybrid);

fn main() {
    print_sizes();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
