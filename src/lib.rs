//! # lynx-zoo
//!
//! An ONNX-exporting model zoo and variant comparison library for GPT-4-style multimodal LLMs,
//! after the Lynx study (Zeng et al. 2023, "What Matters in Training a GPT4-Style Language Model
//! with Multimodal Inputs?", arXiv 2307.02469).
//!
//! The pipeline is the layout; one module per stage:
//!
//! 1. [`data`]: the synthetic benchmark generator -- seeded Open-VQA splits and text data.
//! 2. [`benchmark`]: the Open-VQA loader, the question classes and what scoring needs of each.
//! 3. [`manifest`]: a variant as data -- the typed, validated `variants/NAME.yaml`.
//! 4. [`zoo`]: a folder of variants -- list, check (schema, paths, checksums, graph I/O), load;
//!    [`import`]: an onnxruntime-genai or Optimum folder made into a variant.
//! 5. [`runtime`]: ONNX Runtime behind one module -- library loading, sessions, providers.
//! 6. [`preprocess`]: image or video -> pixels (decode, orient, resize, crop, normalise).
//! 7. [`text`]: the tokenizer and the prompt template, batch padding.
//! 8. [`model`]: vision encoder -> connector -> decoder prefill; [`Model::ask`].
//! 9. [`generate`]: greedy, beam search and sampling over the KV-cached decoder.
//! 10. [`score`]: the scoring rule (answer spaces, format instructions), accuracy, bootstrap
//!     intervals, paired tests and multiplicity corrections.
//! 11. [`eval`]: a variant over a benchmark -- resumable, sharded predictions, the majority floor
//!     and the image-swap control.
//! 12. [`bench`]: latency per stage, throughput, memory and size of a variant.
//! 13. [`results`]: the results folder -- its layout, loading and re-scoring, the shard merge.
//! 14. [`report`]: comparison tables (terminal, Markdown, CSV, JSON), floors and controls,
//!     corrected statistics, Pareto front, plot.
//!
//! ```no_run
//! use lynx_zoo::{GenerationOptions, Media, RuntimeOptions, Zoo};
//! let zoo = Zoo::open(".")?;
//! let mut model = zoo.load("lynx", &RuntimeOptions::new())?;
//! let answer = model.ask(&Media::image("photo.png"), "What is in the picture?", &GenerationOptions::greedy(24))?;
//! println!("{}", answer.text);
//! # Ok::<(), lynx_zoo::Error>(())
//! ```
//!
//! Errors are one enum, [`Error`]; see [`error`].

#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod bench;
pub mod benchmark;
pub mod data;
pub mod error;
pub mod eval;
pub mod files;
pub mod generate;
pub mod import;
pub mod manifest;
pub mod model;
pub mod onnx_proto;
pub mod preprocess;
pub mod report;
pub mod results;
pub mod runtime;
pub mod score;
pub mod text;
pub mod zoo;

pub use error::{Error, Result};
pub use generate::GenerationOptions;
pub use manifest::Manifest;
pub use model::{Answer, Model, Request, Timings};
pub use preprocess::Media;
pub use runtime::{ExecutionProvider, RuntimeOptions};
pub use zoo::Zoo;
