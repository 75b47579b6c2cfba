//! # lynx-zoo
//!
//! An ONNX-exporting model zoo and variant comparison library for GPT-4-style multimodal LLMs,
//! after the Lynx study (Zeng et al. 2023, "What Matters in Training a GPT4-Style Language Model
//! with Multimodal Inputs?", arXiv 2307.02469).
//!
//! The pipeline is the layout; one module per stage:
//!
//! 1. [`data`]: the benchmark -- a seeded synthetic Open-VQA generator and the Open-VQA loader.
//! 2. [`score`]: answer normalisation, accuracy, bootstrap intervals and paired tests.
//!
//! Errors are one enum, [`Error`]; see [`error`].

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod data;
pub mod error;
pub mod score;

pub use error::{Error, Result};
