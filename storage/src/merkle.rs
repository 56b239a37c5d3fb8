//! Binary Merkle tree over SHA-256, used for ledger state roots, checkpoint snapshots and
//! state-transfer chunk proofs.
//!
//! Leaves and inner nodes are hashed with distinct prefixes (0x00 and 0x01) so a leaf can
//! never be passed off as an inner node (second-preimage resistance). An odd node at the end
//! of a level is promoted unchanged to the next level.

use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 digest.
pub type Hash = [u8; 32];

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// Root of a tree with no leaves.
pub const EMPTY_ROOT: Hash = [0u8; 32];

/// Hash of a leaf's bytes.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(bytes);
    hasher.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// A full tree kept level by level, so proofs are cheap.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    /// levels[0] are the leaf hashes; the last level holds the root alone.
    levels: Vec<Vec<Hash>>,
}

/// The sibling hashes from a leaf to the root. `None` marks a level where the node had no
/// sibling and was promoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleProof {
    pub leaf_index: u64,
    pub leaf_count: u64,
    pub siblings: Vec<Option<Hash>>,
}

impl MerkleTree {
    pub fn from_leaf_hashes(leaves: Vec<Hash>) -> MerkleTree {
        let mut levels = vec![leaves];
        while levels.last().expect("one level at least").len() > 1 {
            let below = levels.last().expect("one level at least");
            let above: Vec<Hash> = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [single] => *single,
                    _ => unreachable!("chunks(2) yields one or two"),
                })
                .collect();
            levels.push(above);
        }
        MerkleTree { levels }
    }

    pub fn from_leaves<'a>(leaves: impl IntoIterator<Item = &'a [u8]>) -> MerkleTree {
        MerkleTree::from_leaf_hashes(leaves.into_iter().map(leaf_hash).collect())
    }

    pub fn leaf_count(&self) -> u64 {
        self.levels[0].len() as u64
    }

    pub fn root(&self) -> Hash {
        match self.levels.last() {
            Some(top) if top.len() == 1 => top[0],
            _ => EMPTY_ROOT,
        }
    }

    /// Proof for one leaf; `None` if the index is out of range.
    pub fn proof(&self, leaf_index: u64) -> Option<MerkleProof> {
        if leaf_index >= self.leaf_count() {
            return None;
        }
        let mut index = leaf_index as usize;
        let mut siblings = Vec::with_capacity(self.levels.len());
        for level in &self.levels[..self.levels.len() - 1] {
            let sibling = index ^ 1;
            siblings.push(level.get(sibling).copied());
            index /= 2;
        }
        Some(MerkleProof {
            leaf_index,
            leaf_count: self.leaf_count(),
            siblings,
        })
    }
}

impl MerkleProof {
    /// True when `leaf` sits at `leaf_index` of a tree of `leaf_count` leaves with this root.
    pub fn verify(&self, root: &Hash, leaf: &Hash) -> bool {
        if self.leaf_index >= self.leaf_count
            || self.siblings.len() != levels_above(self.leaf_count)
        {
            return false;
        }
        let mut index = self.leaf_index;
        let mut width = self.leaf_count;
        let mut hash = *leaf;
        for sibling in &self.siblings {
            let has_sibling = (index ^ 1) < width;
            hash = match (sibling, has_sibling) {
                (Some(s), true) if index.is_multiple_of(2) => node_hash(&hash, s),
                (Some(s), true) => node_hash(s, &hash),
                (None, false) => hash,
                _ => return false,
            };
            index /= 2;
            width = width.div_ceil(2);
        }
        &hash == root
    }
}

/// Number of levels above the leaves in a tree of `leaf_count` leaves.
fn levels_above(leaf_count: u64) -> usize {
    let mut width = leaf_count;
    let mut levels = 0;
    while width > 1 {
        width = width.div_ceil(2);
        levels += 1;
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_and_single() {
        assert_eq!(MerkleTree::from_leaf_hashes(vec![]).root(), EMPTY_ROOT);
        let leaf = leaf_hash(b"a");
        let tree = MerkleTree::from_leaf_hashes(vec![leaf]);
        assert_eq!(tree.root(), leaf);
        assert!(tree.proof(0).unwrap().verify(&tree.root(), &leaf));
        assert!(tree.proof(1).is_none());
    }

    #[test]
    fn leaf_is_not_a_node() {
        let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
        let mut joined = a.to_vec();
        joined.extend_from_slice(&b);
        assert_ne!(
            leaf_hash(&joined),
            MerkleTree::from_leaf_hashes(vec![a, b]).root()
        );
    }

    proptest! {
        #[test]
        fn every_proof_verifies_and_tampering_fails(count in 1usize..70, pick in 0usize..70, flip in 0usize..32) {
            let leaves: Vec<Hash> = (0..count).map(|i| leaf_hash(&i.to_le_bytes())).collect();
            let tree = MerkleTree::from_leaf_hashes(leaves.clone());
            let index = pick % count;
            let proof = tree.proof(index as u64).unwrap();
            prop_assert!(proof.verify(&tree.root(), &leaves[index]));
            let mut wrong = leaves[index];
            wrong[flip] ^= 1;
            prop_assert!(!proof.verify(&tree.root(), &wrong));
            if count > 1 {
                let other = (index + 1) % count;
                prop_assert!(!proof.verify(&tree.root(), &leaves[other]));
            }
        }
    }
}
