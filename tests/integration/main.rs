//! The integration tests, one module per subject, built as one test binary: each separate
//! binary would link the whole library and its dependencies again, which cost CI about a minute.
//!
//! Run one subject with `cargo test --release --test integration runtime_parity::`.

mod common;

mod blank_picture;
mod cli_pipes;
mod cluster_cli;
mod data_cli;
mod eval_cli;
mod feature_cache;
mod flag_bounds;
mod fuzz;
mod mixed_zoo;
mod open_manifest;
mod results_folder;
mod runtime_cli;
mod runtime_errors;
mod runtime_generate;
mod runtime_parity;
mod runtime_preprocess;
mod scorer_adversarial;
mod seeds_cli;
mod zoo_hardening;
