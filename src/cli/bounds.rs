//! Bounds of the numeric flags, checked by clap when the command line is parsed, so that `0` or a
//! typo like `--threads 4000` is a usage error (exit 2) naming the flag and the accepted range
//! (`invalid value '0' for '--batch <BATCH>': 0 is not in 1..=256`) before any model is loaded.
//!
//! | flag | range | why this bound |
//! | --- | --- | --- |
//! | `--threads` | 1..=256 | ONNX Runtime's intra-op pool gains nothing past the physical cores; 256 covers the largest two-socket servers, and 4000 threads took over a minute just to start |
//! | `--beams` | 1..=64 | [`lynx_zoo::generate::MAX_BEAMS`]: Lynx decodes with 5; each beam is a decoder row |
//! | `--batch`, `--bench-batch` | 1..=256 | a batch holds every item's pixels and KV cache at once |
//! | `--limit` | 1..=10 000 000 | a limit past the benchmark's end means all of it; 0 items is no run |
//! | `--max-new-tokens` | 1..=4096 | the context of every variant is shorter |
//! | `--items` | 1..=1000 | items per modality timed by `bench` |
//! | `--repeats` | 1..=1000 | timed rounds |
//! | `--warmup` | 0..=100 | untimed rounds (0: none) |

use clap::builder::RangedU64ValueParser;

/// Most intra-op threads per session.
pub const MAX_THREADS: u64 = 256;
/// Most items per batch (`--batch`, `--bench-batch`).
pub const MAX_BATCH: u64 = 256;
/// Most `--workers`.
pub const MAX_WORKERS: u64 = 64;
/// Largest `--limit`.
pub const MAX_LIMIT: u64 = 10_000_000;
/// Largest `--max-new-tokens`.
pub const MAX_NEW_TOKENS: u64 = 4096;
/// Most items per modality that `bench` times.
pub const MAX_BENCH_ITEMS: u64 = 1000;
/// Most timed rounds.
pub const MAX_REPEATS: u64 = 1000;
/// Most untimed rounds.
pub const MAX_WARMUP: u64 = 100;

/// A `usize` flag in `1..=max`.
pub fn positive(max: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=max)
}

/// A `usize` flag in `0..=max`.
pub fn up_to(max: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(0..=max)
}

/// `--beams`: 1..=[`lynx_zoo::generate::MAX_BEAMS`].
pub fn beams() -> RangedU64ValueParser<usize> {
    positive(lynx_zoo::generate::MAX_BEAMS as u64)
}

/// `--threads`: 1..=[`MAX_THREADS`].
pub fn threads() -> RangedU64ValueParser<usize> {
    positive(MAX_THREADS)
}

/// `--workers`: `auto` or a count in 1..=[`MAX_WORKERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// [`lynx_zoo::eval::auto_workers`] by the variant's size (decoder and files), unless `--threads` is given
    /// (then one).
    Auto,
    /// This many.
    Count(usize),
}

/// Parses `--workers`.
pub fn workers(text: &str) -> Result<Workers, String> {
    if text == "auto" {
        return Ok(Workers::Auto);
    }
    match text.parse::<u64>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(Workers::Count(n as usize)),
        Ok(n) => Err(format!("{n} is not in 1..={MAX_WORKERS} (or `auto`)")),
        Err(_) => Err(format!("`{text}` is not `auto` or a whole number in 1..={MAX_WORKERS}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[arg(long, value_parser = super::positive(8))]
        n: Option<usize>,
        #[arg(long, value_parser = super::up_to(2), default_value_t = 0)]
        w: usize,
    }

    #[test]
    fn ranges_hold_at_both_ends() {
        assert_eq!(T::try_parse_from(["t", "--n", "1"]).unwrap().n, Some(1));
        assert_eq!(T::try_parse_from(["t", "--n", "8", "--w", "2"]).unwrap().w, 2);
        for bad in [&["t", "--n", "0"][..], &["t", "--n", "9"], &["t", "--w", "3"], &["t", "--n", "-1"]] {
            let e = T::try_parse_from(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
        let e = T::try_parse_from(["t", "--n", "0"]).unwrap_err().to_string();
        assert!(e.contains("--n") && e.contains("1..=8"), "{e}");
    }
}
