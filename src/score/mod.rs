//! Scoring, after Open-VQA, hardened against degenerate answers: answer normalisation and
//! whole-word containment ([`normalize`]), the candidates of each question class
//! ([`answer_space`]), format instructions ([`format`]), the rule that combines them ([`rule`]),
//! per-class accuracy with bootstrap intervals and paired significance tests ([`metrics`]), and the
//! corrections for many comparisons ([`multiplicity`]).

pub mod answer_space;
pub mod format;
pub mod metrics;
pub mod multiplicity;
pub mod normalize;
pub mod rule;

pub use answer_space::{AnswerSpace, Candidate};
pub use format::{follows, Instruction};
pub use metrics::{
    accuracy, class_accuracy, mcnemar_exact, mean_sd, paired, welch, Accuracy, ClassAccuracy, PairedTest, WelchTest,
    DEFAULT_RESAMPLES,
};
pub use multiplicity::{benjamini_hochberg, holm};
pub use normalize::{is_correct, normalize, normalize_tokens};
pub use rule::{Expected, Verdict};
