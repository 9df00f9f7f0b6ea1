//! cargo-fuzz crate for sspr-ivr. The target bodies live in [`drivers`], which
//! `tests/fuzz_smoke.rs` also compiles, so `cargo test` checks the same invariants
//! on the seeds and on pseudo-random inputs. See `docs/fuzzing.md`.

pub mod drivers;
