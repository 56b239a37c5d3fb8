//! CC-BFT DORA compliance engine.
