//! `lynx-zoo merge`: the shard files of `eval --shard` into one predictions file and one timings
//! file. See docs/cli.md.
//!
//! ```text
//! OUT/VARIANT/predictions.shard-I-of-N.jsonl (I = 0..N)  ->  OUT/VARIANT/predictions.jsonl
//! OUT/VARIANT/timings.shard-I-of-N.jsonl     (I = 0..N)  ->  OUT/VARIANT/timings.jsonl
//! ```
//!
//! Predictions must be exactly the benchmark's items of `run.json` (its `limit` too), each once,
//! each in the shard its file is named after; anything else means files of different runs were
//! mixed and is refused with its `file:line`. Timings are kept apart because they are not
//! deterministic, and may be incomplete: a missing timing file or item is a warning.
//!
//! A control run of a variant (`OUT/VARIANT/control-image-swap/`, [`ResultsDir::run_dir`]) run
//! with `--shard` is merged the same way, in its own folder. The merge itself is the library's
//! ([`lynx_zoo::results::merge`]); this prints what it did.

use std::path::PathBuf;

use clap::Args;

use lynx_zoo::eval::Control;
use lynx_zoo::results::merge::{self, Merged};
use lynx_zoo::results::ResultsDir;

/// Flags of `merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Variants whose shard files to merge.
    #[arg(required = true)]
    variants: Vec<String>,
    /// Results folder.
    #[arg(long, default_value = "results")]
    out: PathBuf,
}

/// Prints what merging the run `label` did: predictions to stdout, warnings to stderr.
fn print(label: &str, m: &Merged) {
    let files: Vec<String> =
        m.shards.iter().filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned())).collect();
    println!(
        "{label}: merged {} shards ({}) into {} ({} items)",
        files.len(),
        files.join(", "),
        m.predictions.display(),
        m.items
    );
    for w in &m.warnings {
        eprintln!("warning: {label}: {w}");
    }
    if let Some(t) = &m.timings {
        println!(
            "{label}: merged {} timing files into {} ({} of {} items)",
            t.files,
            t.path.display(),
            t.timed,
            m.items
        );
    }
}

/// `lynx-zoo merge`.
pub fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let results = ResultsDir::new(&args.out);
    for name in &args.variants {
        for control in merge::RUNS {
            let dir = results.run_dir(name, control);
            let label = match control {
                Control::None => name.clone(),
                Control::ImageSwap => format!("{name} (image swap)"),
            };
            // A control is merged when it was run sharded (`eval --image-swap --shard ...`).
            if control.is_none() || merge::has_shards(&dir) {
                print(&label, &merge::merge_run(&dir)?);
            }
        }
    }
    Ok(())
}
