//! CC-BFT storage.
