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
//! with `--shard` is merged the same way, in its own folder.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use lynx_zoo::benchmark::Benchmark;
use lynx_zoo::eval::{self, Control, Prediction, RunSpec, Shard};
use lynx_zoo::results::{lock, ResultsDir};
use lynx_zoo::Error;

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

fn read_spec(dir: &Path) -> anyhow::Result<RunSpec> {
    let p = dir.join("run.json");
    let text = fs::read_to_string(&p)
        .with_context(|| format!("reading `{}` (was the variant evaluated into this folder?)", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing `{}`", p.display()))
}

/// The shard of a `predictions.shard-I-of-N.jsonl` file name; `None` for other names.
fn shard_of(file: &str) -> Option<Shard> {
    let rest = file.strip_prefix("predictions.shard-")?.strip_suffix(".jsonl")?;
    let (i, n) = rest.split_once("-of-")?;
    let (index, count) = (i.parse().ok()?, n.parse().ok()?);
    (count > 1 && index < count).then_some(Shard { index, count })
}

/// The timings file that `eval` writes next to a shard's predictions.
fn timings_name(shard: Shard) -> String {
    format!("timings.shard-{}-of-{}.jsonl", shard.index, shard.count)
}

/// The shard files in `dir`, one per shard of a single `N`, ordered by shard.
fn shard_files(dir: &Path) -> anyhow::Result<Vec<(Shard, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing `{}`", dir.display()))? {
        let p = entry?.path();
        let file = p.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string();
        if !(file.starts_with("predictions.shard-") && file.ends_with(".jsonl")) {
            continue;
        }
        let Some(shard) = shard_of(&file) else {
            bail!("`{}` is not named like a shard file (predictions.shard-I-of-N.jsonl, 0 <= I < N)", p.display());
        };
        found.push((shard, p));
    }
    found.sort_by_key(|(s, _)| (s.count, s.index));
    let Some(&(Shard { count, .. }, _)) = found.first() else {
        bail!("no shard files (predictions.shard-I-of-N.jsonl) in `{}`", dir.display());
    };
    if let Some((other, p)) = found.iter().find(|(s, _)| s.count != count) {
        bail!(
            "`{}` holds shards of two splits (of {count} and of {}, e.g. `{}`); remove the files of the stale one",
            dir.display(),
            other.count,
            p.display()
        );
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !found.iter().any(|(s, _)| s.index == *i))
        .map(|index| format!("`{}`", Shard { index, count }.file_name()))
        .collect();
    if !missing.is_empty() {
        bail!(
            "`{}` is missing {} of {count} shard files: {} (run `lynx-zoo eval` for those shards first)",
            dir.display(),
            missing.len(),
            missing.join(", ")
        );
    }
    Ok(found)
}

/// Reads the shard files into one list in benchmark order. Every line must be a prediction of an
/// item of `bench` (within `limit`), at its benchmark position, in the file of its shard, and no
/// item may appear twice; errors name the `file:line`.
fn read_shards(bench: &Benchmark, limit: Option<usize>, files: &[(Shard, PathBuf)]) -> anyhow::Result<Vec<Prediction>> {
    let position: HashMap<String, usize> = bench.records.iter().enumerate().map(|(i, r)| (r.id(), i)).collect();
    // Per benchmark position: the prediction and where it was read (for the duplicate message).
    let mut seen: HashMap<usize, (Prediction, String)> = HashMap::new();
    for (shard, path) in files {
        let text = lynx_zoo::files::read_text(path, lynx_zoo::files::FileKind::Records)?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let at = |message: String| Error::jsonl(path, i + 1, message);
            let p: Prediction = serde_json::from_str(line)
                .map_err(|e| at(format!("not a prediction line: {e} (an interrupted shard? run its eval again)")))?;
            let Some(&pos) = position.get(&p.id) else {
                return Err(at(format!("id `{}` is not in the benchmark `{}`", p.id, bench.path.display())).into());
            };
            if p.position != pos {
                return Err(at(format!(
                    "id `{}` says position {} but is at position {pos} of `{}` (a run of another benchmark?)",
                    p.id,
                    p.position,
                    bench.path.display()
                ))
                .into());
            }
            if let Some(limit) = limit.filter(|&l| pos >= l) {
                return Err(at(format!(
                    "id `{}` (position {pos}) is beyond the run's limit of {limit} items (run.json)",
                    p.id
                ))
                .into());
            }
            if !shard.contains(pos) {
                return Err(at(format!("id `{}` (position {pos}) does not belong to shard {shard}", p.id)).into());
            }
            let here = format!("{}:{}", path.display(), i + 1);
            if let Some((_, first)) = seen.get(&pos) {
                return Err(at(format!("id `{}` appears twice (also at {first})", p.id)).into());
            }
            seen.insert(pos, (p, here));
        }
    }
    let mut merged: Vec<(usize, Prediction)> = seen.into_iter().map(|(pos, (p, _))| (pos, p)).collect();
    merged.sort_by_key(|(pos, _)| *pos);
    Ok(merged.into_iter().map(|(_, p)| p).collect())
}

/// Writes `text` to `path` through a temporary file, so that a reader never sees half of it.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    fs::write(&tmp, text).with_context(|| format!("writing `{}`", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming `{}` to `{}`", tmp.display(), path.display()))
}

/// Merges the timing files of `shards` into `dir/timings.jsonl` in the order of `merged`, warning
/// about what is missing. Returns the line to print, if anything was merged.
fn merge_timings(
    name: &str,
    dir: &Path,
    shards: &[(Shard, PathBuf)],
    merged: &[Prediction],
) -> anyhow::Result<Option<String>> {
    let mut files = Vec::new();
    for (shard, _) in shards {
        let p = dir.join(timings_name(*shard));
        if p.is_file() {
            files.push(p);
        } else {
            eprintln!("warning: {name}: no `{}`; timings.jsonl lacks shard {shard}'s items", p.display());
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    let order: Vec<&str> = merged.iter().map(|p| p.id.as_str()).collect();
    let timings = eval::merge_timings(&files, &order)?;
    for f in &timings.cut {
        eprintln!("warning: {name}: left out the incomplete last line of `{}` (an interrupted run)", f.display());
    }
    if !timings.missing.is_empty() {
        eprintln!(
            "warning: {name}: {} of {} items have no timing (e.g. {})",
            timings.missing.len(),
            merged.len(),
            timings.missing.iter().take(5).map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ")
        );
    }
    let out = dir.join("timings.jsonl");
    write_atomically(&out, &timings.text())?;
    Ok(Some(format!(
        "{name}: merged {} timing files into {} ({} of {} items)",
        files.len(),
        out.display(),
        timings.lines.len(),
        merged.len()
    )))
}

/// The runs a variant's folder may hold, each merged when it has shard files: the plain run
/// (required) and every control (src/eval/runner.rs `Control`; add new ones here).
const RUNS: [Control; 2] = [Control::None, Control::ImageSwap];

/// Merges the shards of one run in `dir`; `label` names it in messages.
fn merge_run(label: &str, dir: &Path) -> anyhow::Result<()> {
    let spec = read_spec(dir)?;
    // The whole folder: refused while a shard is still being written, or another merge runs.
    let _lock = lock::lock(dir, lock::Access::Whole, &lock::this_command())?;
    let shards = shard_files(dir)?;
    let bench = Benchmark::load(&spec.bench)
        .with_context(|| format!("loading the benchmark `{}` named in `{}`", spec.bench.display(), dir.display()))?;
    let merged = read_shards(&bench, spec.limit, &shards)?;
    eval::check_complete(&bench, spec.limit, &merged, dir)?;
    let out = dir.join("predictions.jsonl");
    let mut text = String::new();
    for p in &merged {
        text.push_str(&serde_json::to_string(p)?);
        text.push('\n');
    }
    write_atomically(&out, &text)?;
    let files: Vec<String> =
        shards.iter().filter_map(|(_, p)| p.file_name().map(|f| f.to_string_lossy().into_owned())).collect();
    println!(
        "{label}: merged {} shards ({}) into {} ({} items)",
        files.len(),
        files.join(", "),
        out.display(),
        merged.len()
    );
    if let Some(line) = merge_timings(label, dir, &shards, &merged)? {
        println!("{line}");
    }
    Ok(())
}

/// Whether `dir` holds any shard file of predictions.
fn has_shards(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with("predictions.shard-"))
    })
}

/// `lynx-zoo merge`.
pub fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let results = ResultsDir::new(&args.out);
    for name in &args.variants {
        for control in RUNS {
            let dir = results.run_dir(name, control);
            let label = match control {
                Control::None => name.clone(),
                Control::ImageSwap => format!("{name} (image swap)"),
            };
            // A control is merged when it was run sharded (`eval --image-swap --shard ...`).
            if control.is_none() || has_shards(&dir) {
                merge_run(&label, &dir)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_file_names_parse() {
        assert_eq!(shard_of("predictions.shard-2-of-3.jsonl"), Some(Shard { index: 2, count: 3 }));
        assert_eq!(timings_name(Shard { index: 2, count: 3 }), "timings.shard-2-of-3.jsonl");
        for bad in ["predictions.shard-3-of-3.jsonl", "predictions.shard-0-of-1.jsonl", "predictions.shard-x.jsonl"] {
            assert_eq!(shard_of(bad), None, "{bad}");
        }
        // Agrees with the name `eval` writes.
        let s = Shard { index: 1, count: 4 };
        assert_eq!(shard_of(&s.file_name()), Some(s));
    }

    fn pred(position: usize) -> String {
        format!(
            "{{\"id\":\"t/{position}\",\"position\":{position},\"class\":\"c\",\"prediction\":\"x\",\"correct\":true,\"new_tokens\":1}}\n"
        )
    }

    /// A benchmark of `n` records whose ids are `t/0`..`t/{n-1}`.
    fn bench(dir: &Path, n: usize) -> Benchmark {
        fs::write(dir.join("a.png"), []).unwrap();
        let text: String = (0..n)
            .map(|i| {
                format!(
                    "{{\"dataset\":\"t\",\"index\":{i},\"question\":\"q\",\"answer\":[\"a\"],\"image\":\"a.png\"}}\n"
                )
            })
            .collect();
        let p = dir.join("ann.jsonl");
        fs::write(&p, text).unwrap();
        Benchmark::load(&p).unwrap()
    }

    #[test]
    fn shard_lines_are_checked_with_their_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        let b = bench(t.path(), 4);
        let shards = |a: &str, c: &str| {
            let (pa, pb) =
                (t.path().join("predictions.shard-0-of-2.jsonl"), t.path().join("predictions.shard-1-of-2.jsonl"));
            fs::write(&pa, a).unwrap();
            fs::write(&pb, c).unwrap();
            vec![(Shard { index: 0, count: 2 }, pa), (Shard { index: 1, count: 2 }, pb)]
        };
        let merged = read_shards(&b, None, &shards(&(pred(2) + &pred(0)), &(pred(1) + &pred(3)))).unwrap();
        assert_eq!(merged.iter().map(|p| p.position).collect::<Vec<_>>(), vec![0, 1, 2, 3]);

        let err = |a: &str, c: &str, limit| read_shards(&b, limit, &shards(a, c)).unwrap_err().to_string();
        // An identical duplicate is refused too.
        let e = err(&(pred(0) + &pred(2) + &pred(0)), &pred(1), None);
        assert!(
            e.contains("shard-0-of-2.jsonl:3")
                && e.contains("`t/0` appears twice")
                && e.contains("shard-0-of-2.jsonl:1"),
            "{e}"
        );
        let e = err(&pred(0), &(pred(1) + &pred(9).replace("t/9", "u/9")), None);
        assert!(e.contains("shard-1-of-2.jsonl:2") && e.contains("`u/9` is not in the benchmark"), "{e}");
        let e = err(&pred(0), &pred(1).replace("\"position\":1", "\"position\":3"), None);
        assert!(e.contains("shard-1-of-2.jsonl:1") && e.contains("says position 3"), "{e}");
        let e = err(&pred(0), &pred(2), None);
        assert!(e.contains("shard-1-of-2.jsonl:1") && e.contains("does not belong to shard 1/2"), "{e}");
        let e = err(&(pred(0) + &pred(2)), &pred(1), Some(2));
        assert!(e.contains("shard-0-of-2.jsonl:2") && e.contains("beyond the run's limit of 2"), "{e}");
        let e = err(&pred(0), "{\"id\":", None);
        assert!(e.contains("shard-1-of-2.jsonl:1") && e.contains("not a prediction line"), "{e}");
    }

    #[test]
    fn shard_sets_must_be_whole_and_of_one_split() {
        let t = tempfile::tempdir().unwrap();
        let touch = |f: &str| fs::write(t.path().join(f), "").unwrap();
        let e = shard_files(t.path()).unwrap_err().to_string();
        assert!(e.contains("no shard files"), "{e}");
        touch("predictions.shard-0-of-3.jsonl");
        touch("predictions.shard-2-of-3.jsonl");
        let e = shard_files(t.path()).unwrap_err().to_string();
        assert!(e.contains("missing 1 of 3") && e.contains("`predictions.shard-1-of-3.jsonl`"), "{e}");
        touch("predictions.shard-1-of-3.jsonl");
        assert_eq!(shard_files(t.path()).unwrap().len(), 3);
        touch("predictions.shard-0-of-2.jsonl");
        let e = shard_files(t.path()).unwrap_err().to_string();
        assert!(e.contains("two splits (of 2 and of 3"), "{e}");
        fs::remove_file(t.path().join("predictions.shard-0-of-2.jsonl")).unwrap();
        touch("predictions.shard-7.jsonl");
        let e = shard_files(t.path()).unwrap_err().to_string();
        assert!(e.contains("predictions.shard-7.jsonl") && e.contains("not named like a shard file"), "{e}");
    }
}
