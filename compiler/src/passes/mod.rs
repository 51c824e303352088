//! Graph-to-graph passes that run outside the e-graph optimiser.
//!
//! - [`precision`]: computes f16/bf16 graphs in f32 (casts at the edges).
//! - [`prune`]: magnitude pruning of constant matmul weights (`--prune`).

pub mod precision;
pub mod prune;
