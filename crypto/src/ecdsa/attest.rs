//! Checkpoint attestations a contract or any Ethereum tool checks.
//!
//! The committee's threshold key signs a fixed 99-byte message, hashed as an EIP-191 personal
//! message (version 0x45), so that Solidity checks it with
//!
//! ```text
//! bytes32 h = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n99",
//!     "ccbft checkpoint v1", uint64(chainId), uint64(height), blockDigest, stateRoot));
//! require(ecrecover(h, v, r, s) == committee);
//! ```
//!
//! and `eth_sign`/`personal_sign` tools (ethers, web3, cast) verify the same bytes. The message:
//!
//! | bytes | field |
//! |---|---|
//! | 19 | ASCII `ccbft checkpoint v1` (domain and version) |
//! | 8 | chain id, u64 big-endian (which ledger) |
//! | 8 | height, u64 big-endian (the stable checkpoint's sequence number) |
//! | 32 | block digest |
//! | 32 | state root |

use super::{verify_against_address, EcdsaError, GroupKey, RecoverableSignature};
use sha3::{Digest as _, Keccak256};

/// Domain and version of the attestation message.
pub const ATTESTATION_TAG: &[u8; 19] = b"ccbft checkpoint v1";
/// Length of the attestation message in bytes.
pub const ATTESTATION_MESSAGE_BYTES: usize = 19 + 8 + 8 + 32 + 32;

/// A stable checkpoint as attested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub chain_id: u64,
    pub height: u64,
    pub block_digest: [u8; 32],
    pub state_root: [u8; 32],
}

impl Checkpoint {
    /// The fixed message (see the module documentation).
    pub fn message(&self) -> [u8; ATTESTATION_MESSAGE_BYTES] {
        let mut m = [0u8; ATTESTATION_MESSAGE_BYTES];
        m[..19].copy_from_slice(ATTESTATION_TAG);
        m[19..27].copy_from_slice(&self.chain_id.to_be_bytes());
        m[27..35].copy_from_slice(&self.height.to_be_bytes());
        m[35..67].copy_from_slice(&self.block_digest);
        m[67..].copy_from_slice(&self.state_root);
        m
    }

    /// The digest signed: keccak256 of the EIP-191 personal message.
    pub fn digest(&self) -> [u8; 32] {
        eip191_digest(&self.message())
    }
}

/// keccak256("\x19Ethereum Signed Message:\n" || decimal length || message).
pub fn eip191_digest(message: &[u8]) -> [u8; 32] {
    let mut h = Keccak256::new();
    h.update(b"\x19Ethereum Signed Message:\n");
    h.update(message.len().to_string().as_bytes());
    h.update(message);
    h.finalize().into()
}

/// Checks an attestation of `checkpoint` against the committee's address.
pub fn verify_attestation(
    address: &[u8; 20],
    checkpoint: &Checkpoint,
    signature: &RecoverableSignature,
) -> Result<GroupKey, EcdsaError> {
    verify_against_address(address, &checkpoint.digest(), signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eip191_matches_a_known_vector() {
        // personal_sign hash of "hello" (as printed by ethers' hashMessage("hello")).
        assert_eq!(
            crate::hex::encode(&eip191_digest(b"hello")),
            "50b2c43fd39106bafbba0da34fc430e1f91e3c96ea2acee2bc34119f92b37750"
        );
    }

    #[test]
    fn message_layout_is_fixed() {
        let c = Checkpoint {
            chain_id: 0x0102,
            height: 7,
            block_digest: [0xaa; 32],
            state_root: [0xbb; 32],
        };
        let m = c.message();
        assert_eq!(&m[..19], b"ccbft checkpoint v1");
        assert_eq!(&m[19..27], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&m[27..35], &[0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(&m[35..67], &[0xaa; 32]);
        assert_eq!(&m[67..], &[0xbb; 32]);
    }
}
