//! The wire decoder checks every count before it allocates: a frame of a few bytes that
//! claims millions of elements is refused without asking for the memory they would take.
//! Its own test binary, because it installs a global allocator that watches allocations.

use ccbft_core::checkpoint::{CheckpointCert, CheckpointId, SNAPSHOT_BYTES_MAX};
use ccbft_core::crypto::{Bitmap, Certificate, Signature};
use ccbft_core::durable::{CheckpointState, Record};
use ccbft_core::messages::{Block, GlobalMessage, Message, QuorumCert, BLOCK_BATCHES_MAX};
use ccbft_core::wire::{decode_message, decode_record, encode_message, encode_record, WireError};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

/// The system allocator, noting the largest single request made on each thread.
struct Watching;

thread_local! {
    static LARGEST_BYTES: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST_BYTES.try_with(|l| l.set(l.get().max(layout.size())));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// The largest allocation `decode` makes, with its result.
fn largest_allocation<T>(decode: impl FnOnce() -> T) -> (T, usize) {
    LARGEST_BYTES.with(|l| l.set(0));
    let result = decode();
    (result, LARGEST_BYTES.with(Cell::get))
}

/// Far below what any refused claim below would need, far above what decoding a few
/// hundred bytes needs.
const ALLOCATION_BYTES_MAX: usize = 64 * 1024;

fn qc0() -> QuorumCert {
    QuorumCert {
        round: 0,
        block: [0; 32],
        cert: Certificate {
            signers: Bitmap::default(),
            aggregate: Signature(Vec::new()),
        },
    }
}

fn block() -> Block {
    Block {
        round: 1,
        height: 1,
        parent: [0; 32],
        qc: qc0(),
        tc: None,
        cut: vec![0],
        batches: Vec::new(),
        evidence: Vec::new(),
        proposer: 0,
    }
}

fn set_u32(frame: &mut [u8], at: usize, value: u32) {
    frame[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

#[test]
fn a_claim_of_u32_max_elements_fails_fast_without_allocating() {
    // BlockResponse: version, kind, then the block count.
    let mut frame = encode_message(&Message::Global(GlobalMessage::BlockResponse {
        blocks: Vec::new(),
    }));
    set_u32(&mut frame, 2, u32::MAX);
    let (result, largest) = largest_allocation(|| decode_message(&frame));
    assert!(matches!(
        result,
        Err(WireError::TooLong {
            what: "response blocks",
            ..
        })
    ));
    assert!(largest < ALLOCATION_BYTES_MAX, "{largest} bytes allocated");

    // Batch: the payload's byte length is the frame's last field.
    let mut frame = encode_message(&Message::Batch {
        lc: ccbft_core::messages::LocalCert {
            lane: ccbft_core::messages::Lane {
                domain: 0,
                shard: 0,
            },
            view: 0,
            seq: 1,
            digest: [0; 32],
            cert: qc0().cert,
        },
        payload: ccbft_core::messages::Payload::empty(),
    });
    let at = frame.len() - 4;
    for claim in [u32::MAX, ccbft_core::transaction::BATCH_BYTES_MAX as u32] {
        set_u32(&mut frame, at, claim);
        let (result, largest) = largest_allocation(|| decode_message(&frame));
        assert!(
            result.is_err(),
            "a claim of {claim} payload bytes with none behind it"
        );
        assert!(largest < ALLOCATION_BYTES_MAX, "{largest} bytes allocated");
    }
}

#[test]
fn a_claim_within_its_bound_but_beyond_the_input_is_not_reserved() {
    // Proposal with an empty signature: its last 16 bytes are the batch count, the
    // evidence count, the proposer and the signature length.
    let mut frame = encode_message(&Message::Global(GlobalMessage::Proposal {
        block: Arc::new(block()),
        signature: Signature(Vec::new()),
    }));
    let at = frame.len() - 16;
    set_u32(&mut frame, at, BLOCK_BATCHES_MAX as u32);
    let (result, largest) = largest_allocation(|| decode_message(&frame));
    assert!(matches!(
        result,
        Err(WireError::Truncated {
            what: "block batches",
            ..
        })
    ));
    assert!(largest < ALLOCATION_BYTES_MAX, "{largest} bytes allocated");

    // A snapshot record claiming the largest snapshot: version, kind, checkpoint id (104),
    // certificate (32 + 4), then the snapshot length.
    let mut frame = encode_record(&Record::SnapshotInstalled(CheckpointState {
        cert: CheckpointCert {
            id: CheckpointId {
                height: 1,
                block: [0; 32],
                state_root: [0; 32],
                snapshot_root: [0; 32],
            },
            cert: qc0().cert,
        },
        snapshot: Arc::new(vec![1]),
        block: Arc::new(block()),
        lane_certs: Vec::new(),
    }));
    set_u32(&mut frame, 2 + 104 + 36, SNAPSHOT_BYTES_MAX as u32);
    let (result, largest) = largest_allocation(|| decode_record(&frame));
    assert!(matches!(
        result,
        Err(WireError::Truncated {
            what: "snapshot bytes",
            ..
        })
    ));
    assert!(largest < ALLOCATION_BYTES_MAX, "{largest} bytes allocated");
}
