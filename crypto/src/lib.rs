//! CC-BFT cryptography.
