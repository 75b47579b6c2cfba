//! The benchmark: a seeded synthetic Open-VQA generator and the Open-VQA loader.
//!
//! Lynx (arXiv 2307.02469) evaluates on Open-VQA, one JSON object per line with open-ended
//! questions about images and videos. No real data can be downloaded here, so lynx-zoo generates a
//! benchmark in the same format, with difficulty knobs that make architecture choices matter
//! (docs/benchmark.md):
//!
//! 1. [`scene`] and [`render`]: shapes and text labels drawn with a built-in [`font`].
//! 2. [`tasks`]: the eleven question classes and a seeded builder per class.
//! 3. [`phrasing`]: seen and held-out question phrasings and format instructions.
//! 4. [`generate`]: writes a split (`annotations.jsonl`, PNG images and frame folders, captions).
//! 5. [`text`]: the text corpus and text instructions for the language backbones.
//! 6. [`openvqa`]: loads any Open-VQA file, ours or the real one.

pub mod english;
pub mod font;
pub mod generate;
pub mod openvqa;
pub mod phrasing;
pub mod render;
pub mod scene;
pub mod tasks;
pub mod text;

pub use generate::{answers, generate, GenerateConfig, Knobs, Split, SplitMeta, Summary};
pub use openvqa::{media_files, Benchmark, Media, Record};
pub use phrasing::{Instruction, Phrasing};
pub use tasks::{Modality, QuestionClass};
pub use text::{generate_foundation_text, generate_text};
