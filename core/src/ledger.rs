//! Deterministic double-entry payments ledger (placeholder: being written).
