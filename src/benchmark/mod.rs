//! The benchmark: what an evaluation reads and scores, apart from how the synthetic one is made.
//!
//! Lynx (arXiv 2307.02469) evaluates on Open-VQA, one JSON object per line with open-ended
//! questions about images and videos. This module loads any such file -- the committed split our
//! generator wrote (`data`), a fresh one, or the real Open-VQA -- and knows what scoring
//! needs of each record (docs/benchmark.md):
//!
//! 1. [`openvqa`]: the loader, [`Benchmark`] and its [`Record`]s, each scored by the rule of
//!    [`crate::score`] with its answers, wrong options, answer space and format instruction.
//! 2. [`classes`]: the question classes, their answer spaces and instructions, and the vocabulary
//!    the generator draws its answers from.
//!
//! The generator depends on this module, never the reverse: `eval`, `bench`, `results` and
//! `report` need the benchmark, not the generator.

pub mod classes;
pub mod openvqa;

pub use classes::{Modality, QuestionClass};
pub use openvqa::{media_files, Benchmark, Record};

/// The `dataset` key of every record our generator writes; records of other datasets are scored
/// without a class answer space.
pub const DATASET: &str = "lynx-synth";

#[cfg(test)]
mod tests {
    /// The generator depends on the benchmark, never the reverse (no cycle `data` <-> `benchmark`).
    #[test]
    fn the_benchmark_does_not_use_the_generator() {
        let needle = concat!("crate::", "data");
        for (file, text) in [
            ("mod.rs", include_str!("mod.rs")),
            ("classes.rs", include_str!("classes.rs")),
            ("openvqa.rs", include_str!("openvqa.rs")),
        ] {
            assert!(!text.contains(needle), "src/benchmark/{file} uses the generator");
        }
    }
}
