//! Batch verification of BLS votes and Ed25519 client signatures.

use ccbft_crypto::batch::{verify_batch, BatchItem, VerifyPool};
use ccbft_crypto::bls::{PublicKey, SecretKey, Signature, Tag};
use ccbft_crypto::client::{self, ClientPublicKey, ClientSignature, ClientSigningKey};
use ccbft_crypto::CryptoError;

fn secret(i: usize) -> SecretKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    seed[31] = 0xba;
    SecretKey::from_seed(&seed)
}

struct Votes {
    msgs: Vec<Vec<u8>>,
    sigs: Vec<Signature>,
    pks: Vec<PublicKey>,
    tags: Vec<Tag>,
}

impl Votes {
    /// `count` votes by 49 replicas on distinct messages, tags cycling through all kinds.
    fn new(count: usize) -> Votes {
        let sks: Vec<SecretKey> = (0..49).map(secret).collect();
        let mut v = Votes {
            msgs: vec![],
            sigs: vec![],
            pks: vec![],
            tags: vec![],
        };
        for i in 0..count {
            let sk = &sks[i % sks.len()];
            let tag = Tag::ALL[i % Tag::ALL.len()];
            let msg = format!("vote {i} for block {}", i / 7).into_bytes();
            v.sigs.push(sk.sign(tag, &msg));
            v.pks.push(sk.public_key());
            v.tags.push(tag);
            v.msgs.push(msg);
        }
        v
    }

    fn items(&self) -> Vec<BatchItem<'_>> {
        (0..self.msgs.len())
            .map(|i| {
                (
                    self.msgs[i].as_slice(),
                    &self.sigs[i],
                    &self.pks[i],
                    self.tags[i],
                )
            })
            .collect()
    }
}

#[test]
fn one_bad_signature_among_1000_is_named_exactly() {
    let mut votes = Votes::new(1000);
    // Vote 613 carries a valid signature of another message: only it is bad.
    votes.sigs[613] = secret(613 % 49).sign(votes.tags[613], b"something else");
    for threads in [1, 2] {
        let pool = VerifyPool::new(threads).unwrap();
        assert_eq!(verify_batch(&pool, &votes.items()), Err(vec![613]));
    }
}

#[test]
fn valid_batches_pass_and_several_bad_items_are_all_found() {
    let pool = VerifyPool::new(2).unwrap();
    let mut votes = Votes::new(130);
    assert_eq!(verify_batch(&pool, &votes.items()), Ok(()));
    assert_eq!(verify_batch(&pool, &[]), Ok(()));
    // Bad items: first, last, adjacent pair, wrong tag, wrong key.
    let good_sigs = votes.sigs.clone();
    votes.sigs[0] = good_sigs[1];
    votes.sigs[129] = good_sigs[128];
    votes.msgs[64].push(b'!');
    votes.msgs[65].push(b'!');
    votes.tags[100] = if votes.tags[100] == Tag::Receipt {
        Tag::LocalVote
    } else {
        Tag::Receipt
    };
    votes.pks[7] = secret(999).public_key();
    assert_eq!(
        verify_batch(&pool, &votes.items()),
        Err(vec![0, 7, 64, 65, 100, 129])
    );
    // A batch where every item is bad.
    let mut all_bad = Votes::new(9);
    for m in &mut all_bad.msgs {
        m.push(0);
    }
    assert_eq!(verify_batch(&pool, &all_bad.items()), Err((0..9).collect()));
}

#[test]
fn two_signatures_swapped_between_items_are_both_bad() {
    // Swapping signatures keeps the plain sum of signatures equal; the random linear
    // combination must still catch it.
    let pool = VerifyPool::new(1).unwrap();
    let mut votes = Votes::new(20);
    votes.sigs.swap(3, 17);
    assert_eq!(verify_batch(&pool, &votes.items()), Err(vec![3, 17]));
}

#[test]
fn pool_size_is_bounded() {
    assert!(VerifyPool::new(0).is_err());
    assert!(VerifyPool::new(10_000).is_err());
    assert_eq!(VerifyPool::new(3).unwrap().threads(), 3);
}

fn client_key(i: usize) -> ClientSigningKey {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    ClientSigningKey::from_seed(&seed)
}

#[test]
fn ed25519_round_trip_and_strict_checks() {
    let sk = client_key(1);
    let pk = sk.public_key();
    let sig = sk.sign(b"pay 10 EUR");
    pk.verify(b"pay 10 EUR", &sig).unwrap();
    assert_eq!(
        pk.verify(b"pay 11 EUR", &sig),
        Err(CryptoError::InvalidSignature)
    );
    assert_eq!(ClientPublicKey::from_bytes(&pk.to_bytes()).unwrap(), pk);
    assert_eq!(ClientSignature::from_bytes(&sig.to_bytes()).unwrap(), sig);
    assert_eq!(
        ClientSigningKey::from_bytes(&sk.to_bytes())
            .unwrap()
            .public_key(),
        pk
    );

    // Malleated s (s + l) is not canonical.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut bytes = sig.to_bytes();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(bytes[32 + i]) + u16::from(L[i]) + carry;
        bytes[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert!(matches!(
        ClientSignature::from_bytes(&bytes),
        Err(CryptoError::NonCanonical { .. })
    ));

    // Small-order key and R: the identity (y = 1).
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert!(matches!(
        ClientPublicKey::from_bytes(&identity),
        Err(CryptoError::WeakPoint { .. })
    ));
    let mut weak_r = sig.to_bytes();
    weak_r[..32].copy_from_slice(&identity);
    assert!(matches!(
        ClientSignature::from_bytes(&weak_r),
        Err(CryptoError::WeakPoint { .. })
    ));
    // Non-canonical y (y = p + 1 encodes the identity non-canonically).
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xee;
    non_canonical[31] = 0x7f;
    assert!(ClientPublicKey::from_bytes(&non_canonical).is_err());
    assert!(matches!(
        ClientPublicKey::from_bytes(&[0u8; 31]),
        Err(CryptoError::WrongLength { .. })
    ));
}

#[test]
fn ed25519_batch_of_1000_names_the_bad_one() {
    let keys: Vec<ClientSigningKey> = (0..50).map(client_key).collect();
    let msgs: Vec<Vec<u8>> = (0..1000).map(|i| format!("tx {i}").into_bytes()).collect();
    let pks: Vec<ClientPublicKey> = (0..1000).map(|i| keys[i % 50].public_key()).collect();
    let mut sigs: Vec<ClientSignature> = (0..1000).map(|i| keys[i % 50].sign(&msgs[i])).collect();
    let pool = VerifyPool::new(2).unwrap();
    fn items<'a>(
        msgs: &'a [Vec<u8>],
        sigs: &'a [ClientSignature],
        pks: &'a [ClientPublicKey],
    ) -> Vec<client::ClientBatchItem<'a>> {
        (0..msgs.len())
            .map(|i| (msgs[i].as_slice(), &sigs[i], &pks[i]))
            .collect()
    }
    assert_eq!(
        client::verify_batch(&pool, &items(&msgs, &sigs, &pks)),
        Ok(())
    );
    sigs[777] = keys[777 % 50].sign(b"forged");
    assert_eq!(
        client::verify_batch(&pool, &items(&msgs, &sigs, &pks)),
        Err(vec![777])
    );
    sigs[3] = sigs[4];
    assert_eq!(
        client::verify_batch(&pool, &items(&msgs, &sigs, &pks)),
        Err(vec![3, 777])
    );
}
