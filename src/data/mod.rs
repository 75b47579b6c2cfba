//! The synthetic benchmark generator: seeded Open-VQA splits and text data.
//!
//! Lynx (arXiv 2307.02469) evaluates on Open-VQA, one JSON object per line with open-ended
//! questions about images and videos. No real data can be downloaded here, so lynx-zoo generates a
//! benchmark in the same format, with difficulty knobs that make architecture choices matter
//! (docs/benchmark.md). What is generated is read back, scored and evaluated through
//! [`crate::benchmark`], which does not depend on this module:
//!
//! 1. [`scene`] and [`render`]: shapes and text labels drawn with a built-in [`font`].
//! 2. [`tasks`]: a seeded builder per question class (the classes are the benchmark's).
//! 3. [`phrasing`]: seen and held-out question phrasings and format instructions.
//! 4. [`generate`]: writes a split (`annotations.jsonl`, PNG images and frame folders, captions).
//! 5. [`text`]: the text corpus and text instructions for the language backbones.

pub mod english;
pub mod font;
pub mod generate;
pub mod phrasing;
pub mod render;
pub mod scene;
pub mod tasks;
pub mod text;

pub use generate::{answers, generate, GenerateConfig, Knobs, Split, SplitMeta, Summary};
pub use phrasing::{Instruction, Phrasing};
pub use text::{generate_foundation_text, generate_text};
