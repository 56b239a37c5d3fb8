//! CC-BFT storage: what a replica must not forget.

pub mod merkle;
