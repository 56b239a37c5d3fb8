//! The DKG ceremony (in progress).
