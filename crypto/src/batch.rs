//! Batch verification of many independent BLS signatures (different messages, keys and
//! tags) by random linear combination, spread over a rayon pool of configured size.
//!
//! For items `(m_i, s_i, pk_i)` and fresh random 64-bit scalars `r_i`, the batch checks
//! `e(g1, sum r_i s_i) == prod e(r_i pk_i, H(m_i))` — one Miller loop per item and a single
//! final exponentiation, instead of two pairings per item. A batch holding a bad signature
//! fails except with probability about 2^-64 (the scalars are secret and fresh per check).
//! Each pool thread accumulates its share of the items in its own blst `Pairing` context
//! (one per tag, since the tag is the hash-to-curve DST); the contexts are merged and
//! checked once.
//!
//! When a batch fails, the bad items are found by bisection: a failing set is split in two;
//! if the left half passes, the right half must hold a bad item and is split without being
//! checked. One bad item among `n` costs about `n + log2 n` extra item checks, not `n`
//! separate verifications, and several bad items cannot hide each other.

use crate::bls::{PublicKey, Signature, Tag};
use crate::error::CryptoError;
use blst::{blst_p1_affine, blst_p2_affine, Pairing, BLST_ERROR};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rayon::prelude::*;

/// Items combined in one multi-pairing check; longer inputs are verified window by window so
/// memory per check stays bounded.
pub const BATCH_WINDOW_ITEMS_MAX: usize = 4096;
/// Largest verification pool, in threads.
pub const POOL_THREADS_MAX: usize = 256;
/// Bits of each random scalar of the linear combination.
pub const RANDOM_SCALAR_BITS: usize = 64;
const _: () = assert!(RANDOM_SCALAR_BITS.is_multiple_of(8) && RANDOM_SCALAR_BITS <= 128);

/// A rayon pool dedicated to signature verification, sized by configuration.
#[derive(Debug)]
pub struct VerifyPool {
    pool: rayon::ThreadPool,
    threads: usize,
}

impl VerifyPool {
    /// A pool of `threads` threads (1..=[`POOL_THREADS_MAX`]).
    pub fn new(threads: usize) -> Result<VerifyPool, CryptoError> {
        if threads == 0 || threads > POOL_THREADS_MAX {
            return Err(CryptoError::TooMany {
                kind: "verification threads (need 1..=max)",
                got: threads,
                max: POOL_THREADS_MAX,
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ccbft-verify-{i}"))
            .build()
            .map_err(|e| CryptoError::ThreadPool(e.to_string()))?;
        Ok(VerifyPool { pool, threads })
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` inside the pool.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.pool.install(f)
    }
}

/// One item to verify: message, signature, signer key and message kind.
pub type BatchItem<'a> = (&'a [u8], &'a Signature, &'a PublicKey, Tag);

/// Verifies every item. `Ok(())` if all are valid, otherwise the indices (into `items`,
/// increasing) of exactly the invalid ones. An empty batch is valid.
pub fn verify_batch(pool: &VerifyPool, items: &[BatchItem<'_>]) -> Result<(), Vec<usize>> {
    let mut bad = Vec::new();
    for (w, window) in items.chunks(BATCH_WINDOW_ITEMS_MAX).enumerate() {
        let base = w * BATCH_WINDOW_ITEMS_MAX;
        if !verify_all(pool, window) {
            bisect(pool, window, base, &mut bad);
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        bad.sort_unstable();
        Err(bad)
    }
}

/// Appends to `bad` the indices (offset by `base`) of the bad items of `items`, a set that
/// is known to fail.
fn bisect(pool: &VerifyPool, items: &[BatchItem<'_>], base: usize, bad: &mut Vec<usize>) {
    if items.len() == 1 {
        bad.push(base);
        return;
    }
    let mid = items.len() / 2;
    let (left, right) = items.split_at(mid);
    if verify_all(pool, left) {
        bisect(pool, right, base + mid, bad);
    } else {
        bisect(pool, left, base, bad);
        if !verify_all(pool, right) {
            bisect(pool, right, base + mid, bad);
        }
    }
}

/// One randomised multi-pairing check of all `items`, spread over the pool.
fn verify_all(pool: &VerifyPool, items: &[BatchItem<'_>]) -> bool {
    if items.is_empty() {
        return true;
    }
    let chunk = items.len().div_ceil(pool.threads()).max(1);
    let parts: Vec<Option<Vec<Pairing<'static>>>> =
        pool.install(|| items.par_chunks(chunk).map(accumulate).collect());
    let mut contexts = Vec::new();
    for part in parts {
        match part {
            Some(p) => contexts.extend(p),
            None => return false,
        }
    }
    let mut contexts = contexts.into_iter();
    let Some(mut acc) = contexts.next() else {
        return false;
    };
    for ctx in contexts {
        if acc.merge(&ctx) != BLST_ERROR::BLST_SUCCESS {
            return false;
        }
    }
    acc.finalverify(None)
}

/// Accumulates `items` into committed pairing contexts, one per tag present; `None` if blst
/// rejects an input.
fn accumulate(items: &[BatchItem<'_>]) -> Option<Vec<Pairing<'static>>> {
    let mut rng = ChaCha20Rng::from_entropy();
    let mut contexts: [Option<Pairing<'static>>; Tag::ALL.len()] = std::array::from_fn(|_| None);
    for &(msg, sig, pk, tag) in items {
        let ctx = contexts[tag.position()].get_or_insert_with(|| Pairing::new(true, tag.dst()));
        let mut scalar = [0u8; RANDOM_SCALAR_BITS / 8];
        while scalar == [0u8; RANDOM_SCALAR_BITS / 8] {
            rng.fill_bytes(&mut scalar);
        }
        let pk_aff: blst_p1_affine = (*pk.raw()).into();
        let sig_aff: blst_p2_affine = (*sig.raw()).into();
        // Points were validated at decoding: no subgroup checks here.
        let err = ctx.mul_n_aggregate(
            &pk_aff,
            false,
            &sig_aff,
            false,
            &scalar,
            RANDOM_SCALAR_BITS,
            msg,
            &[],
        );
        if err != BLST_ERROR::BLST_SUCCESS {
            return None;
        }
    }
    let mut out = Vec::with_capacity(contexts.len());
    for mut ctx in contexts.into_iter().flatten() {
        ctx.commit();
        out.push(ctx);
    }
    Some(out)
}
