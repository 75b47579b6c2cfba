//! Merging the shard files of a sharded run (`eval --shard`) into one predictions file and one
//! timings file, in the run's own folder:
//!
//! ```text
//! RUN_DIR/predictions.shard-I-of-N.jsonl (I = 0..N)  ->  RUN_DIR/predictions.jsonl
//! RUN_DIR/timings.shard-I-of-N.jsonl     (I = 0..N)  ->  RUN_DIR/timings.jsonl
//! ```
//!
//! Predictions must be exactly the benchmark's items of `run.json` (its `limit` too), each once,
//! each in the shard its file is named after; anything else means files of different runs were
//! mixed and is refused with its `file:line`. Timings are kept apart because they are not
//! deterministic, and may be incomplete: a missing timing file or item is a warning, returned in
//! [`Merged::warnings`].

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{lock, predictions_file, predictions_shard, timings_file, PREDICTIONS_SHARD_PREFIX, RUN_FILE};
use crate::benchmark::Benchmark;
use crate::error::{Error, Result};
use crate::eval::{self, Control, Prediction, RunSpec, Shard};

/// The runs a variant's folder may hold, each merged when it has shard files: the plain run
/// (required) and every control (src/eval/runner.rs `Control`; add new ones here).
pub const RUNS: [Control; 2] = [Control::None, Control::ImageSwap];

/// What [`merge_run`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The shard files merged, in shard order.
    pub shards: Vec<PathBuf>,
    /// The merged `predictions.jsonl`.
    pub predictions: PathBuf,
    /// Items in it.
    pub items: usize,
    /// The merged `timings.jsonl`, when any timing file was there.
    pub timings: Option<MergedTimingsFile>,
    /// What is missing or was left out of the timings (the merge went on).
    pub warnings: Vec<String>,
}

/// The merged timings of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedTimingsFile {
    /// The merged `timings.jsonl`.
    pub path: PathBuf,
    /// Timing files merged.
    pub files: usize,
    /// Items with a timing line.
    pub timed: usize,
}

fn refuse(dir: &Path, message: String) -> Error {
    Error::Results { path: dir.to_path_buf(), message }
}

/// The `run.json` of the run in `dir`.
pub fn read_spec(dir: &Path) -> Result<RunSpec> {
    let p = dir.join(RUN_FILE);
    if !p.is_file() {
        return Err(refuse(dir, format!("has no `{RUN_FILE}` (was the variant evaluated into this folder?)")));
    }
    let text = fs::read_to_string(&p).map_err(|e| Error::io("reading", &p, e))?;
    serde_json::from_str(&text).map_err(|e| Error::jsonl(&p, 1, format!("not a run spec: {e}")))
}

/// Whether `dir` holds any shard file of predictions.
pub fn has_shards(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with(PREDICTIONS_SHARD_PREFIX))
    })
}

/// The shard files in `dir`, one per shard of a single `N`, ordered by shard.
pub fn shard_files(dir: &Path) -> Result<Vec<(Shard, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))? {
        let p = entry.map_err(|e| Error::io("listing", dir, e))?.path();
        let file = p.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string();
        if !(file.starts_with(PREDICTIONS_SHARD_PREFIX) && file.ends_with(".jsonl")) {
            continue;
        }
        let Some(shard) = predictions_shard(&file) else {
            return Err(refuse(
                dir,
                format!("`{file}` is not named like a shard file (predictions.shard-I-of-N.jsonl, 0 <= I < N)"),
            ));
        };
        found.push((shard, p));
    }
    found.sort_by_key(|(s, _)| (s.count, s.index));
    let Some(&(Shard { count, .. }, _)) = found.first() else {
        return Err(refuse(dir, "holds no shard files (predictions.shard-I-of-N.jsonl)".into()));
    };
    if let Some((other, p)) = found.iter().find(|(s, _)| s.count != count) {
        return Err(refuse(
            dir,
            format!(
                "holds shards of two splits (of {count} and of {}, e.g. `{}`); remove the files of the stale one",
                other.count,
                p.display()
            ),
        ));
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !found.iter().any(|(s, _)| s.index == *i))
        .map(|index| format!("`{}`", predictions_file(Shard { index, count })))
        .collect();
    if !missing.is_empty() {
        return Err(refuse(
            dir,
            format!(
                "is missing {} of {count} shard files: {} (run `lynx-zoo eval` for those shards first)",
                missing.len(),
                missing.join(", ")
            ),
        ));
    }
    Ok(found)
}

/// Reads the shard files into one list in benchmark order. Every line must be a prediction of an
/// item of `bench` (within `limit`), at its benchmark position, in the file of its shard, and no
/// item may appear twice; errors name the `file:line`.
pub fn read_shards(bench: &Benchmark, limit: Option<usize>, files: &[(Shard, PathBuf)]) -> Result<Vec<Prediction>> {
    let position: HashMap<String, usize> = bench.records.iter().enumerate().map(|(i, r)| (r.id(), i)).collect();
    // Per benchmark position: the prediction and where it was read (for the duplicate message).
    let mut seen: HashMap<usize, (Prediction, String)> = HashMap::new();
    for (shard, path) in files {
        let text = crate::files::read_text(path, crate::files::FileKind::Records)?;
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let at = |message: String| Error::jsonl(path, i + 1, message);
            let p: Prediction = serde_json::from_str(line)
                .map_err(|e| at(format!("not a prediction line: {e} (an interrupted shard? run its eval again)")))?;
            let Some(&pos) = position.get(&p.id) else {
                return Err(at(format!("id `{}` is not in the benchmark `{}`", p.id, bench.path.display())));
            };
            if p.position != pos {
                return Err(at(format!(
                    "id `{}` says position {} but is at position {pos} of `{}` (a run of another benchmark?)",
                    p.id,
                    p.position,
                    bench.path.display()
                )));
            }
            if let Some(limit) = limit.filter(|&l| pos >= l) {
                return Err(at(format!(
                    "id `{}` (position {pos}) is beyond the run's limit of {limit} items (run.json)",
                    p.id
                )));
            }
            if !shard.contains(pos) {
                return Err(at(format!("id `{}` (position {pos}) does not belong to shard {shard}", p.id)));
            }
            let here = format!("{}:{}", path.display(), i + 1);
            if let Some((_, first)) = seen.get(&pos) {
                return Err(at(format!("id `{}` appears twice (also at {first})", p.id)));
            }
            seen.insert(pos, (p, here));
        }
    }
    let mut merged: Vec<(usize, Prediction)> = seen.into_iter().map(|(pos, (p, _))| (pos, p)).collect();
    merged.sort_by_key(|(pos, _)| *pos);
    Ok(merged.into_iter().map(|(_, p)| p).collect())
}

/// Writes `text` to `path` through a temporary file, so that a reader never sees half of it.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    fs::write(&tmp, text).map_err(|e| Error::io("writing", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("renaming", &tmp, e))
}

/// Merges the timing files of `shards` into `dir/timings.jsonl` in the order of `merged`, adding
/// to `warnings` what is missing; `None` when there was no timing file.
fn merge_timings(
    dir: &Path,
    shards: &[(Shard, PathBuf)],
    merged: &[Prediction],
    warnings: &mut Vec<String>,
) -> Result<Option<MergedTimingsFile>> {
    let mut files = Vec::new();
    for (shard, _) in shards {
        let p = dir.join(timings_file(*shard));
        if p.is_file() {
            files.push(p);
        } else {
            warnings.push(format!("no `{}`; timings.jsonl lacks shard {shard}'s items", p.display()));
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    let order: Vec<&str> = merged.iter().map(|p| p.id.as_str()).collect();
    let timings = eval::merge_timings(&files, &order)?;
    for f in &timings.cut {
        warnings.push(format!("left out the incomplete last line of `{}` (an interrupted run)", f.display()));
    }
    if !timings.missing.is_empty() {
        warnings.push(format!(
            "{} of {} items have no timing (e.g. {})",
            timings.missing.len(),
            merged.len(),
            timings.missing.iter().take(5).map(|id| format!("`{id}`")).collect::<Vec<_>>().join(", ")
        ));
    }
    let path = dir.join(timings_file(Shard::ALL));
    write_atomically(&path, &timings.text())?;
    Ok(Some(MergedTimingsFile { path, files: files.len(), timed: timings.lines.len() }))
}

/// Merges the shards of the run in `dir` (a variant's folder or its control's): takes the whole
/// folder's lock (refused while a shard is still being written, or another merge runs), checks
/// the shards against the benchmark that `run.json` names, and writes `predictions.jsonl` and
/// `timings.jsonl` whole.
pub fn merge_run(dir: &Path) -> Result<Merged> {
    let spec = read_spec(dir)?;
    let _lock = lock::lock(dir, lock::Access::Whole, &lock::this_command())?;
    let shards = shard_files(dir)?;
    let bench = Benchmark::load(&spec.bench).map_err(|e| Error::Item {
        location: format!("loading the benchmark `{}` named in `{}`", spec.bench.display(), dir.display()),
        source: Box::new(e),
    })?;
    let merged = read_shards(&bench, spec.limit, &shards)?;
    eval::check_complete(&bench, spec.limit, &merged, dir)?;
    let predictions = dir.join(predictions_file(Shard::ALL));
    let mut text = String::new();
    for p in &merged {
        text.push_str(&serde_json::to_string(p).map_err(|e| Error::Mismatch(e.to_string()))?);
        text.push('\n');
    }
    write_atomically(&predictions, &text)?;
    let mut warnings = Vec::new();
    let timings = merge_timings(dir, &shards, &merged, &mut warnings)?;
    Ok(Merged {
        shards: shards.into_iter().map(|(_, p)| p).collect(),
        predictions,
        items: merged.len(),
        timings,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
