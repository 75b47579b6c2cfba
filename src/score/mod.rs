//! Scoring, after Open-VQA: answer normalisation and whole-word containment
//! ([`normalize`]), per-class accuracy with bootstrap intervals and paired significance tests
//! ([`metrics`]), and instruction following ([`format`]).

pub mod format;
pub mod metrics;
pub mod normalize;

pub use format::follows;
pub use metrics::{
    accuracy, class_accuracy, mcnemar_exact, paired, Accuracy, ClassAccuracy, PairedTest, DEFAULT_RESAMPLES,
};
pub use normalize::{is_correct, is_correct_given, normalize, normalize_tokens};
