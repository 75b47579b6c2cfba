//! Merging the per-shard timing files of a sharded run (`timings.shard-I-of-N.jsonl`) into one
//! `timings.jsonl` in benchmark order, next to the merged predictions.
//!
//! Timings are not deterministic and may be incomplete (a shard whose timing file was lost, a
//! run killed between an item's prediction and its timing line), so a missing file or item is
//! reported, not refused. A line that names an item twice or an item without a merged prediction
//! is refused: it means files of two different runs were mixed.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::runner::ItemTiming;
use crate::error::{Error, Result};

/// The outcome of [`merge_timings`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergedTimings {
    /// The timing lines in benchmark order, as the shards wrote them (no trailing newline).
    pub lines: Vec<String>,
    /// Ids of merged predictions that have no timing line, in benchmark order.
    pub missing: Vec<String>,
    /// Files whose incomplete last line (a run killed mid-write) was left out.
    pub cut: Vec<PathBuf>,
}

impl MergedTimings {
    /// The merged file's text: one line per timed item, each ending in a newline.
    pub fn text(&self) -> String {
        self.lines.iter().flat_map(|l| [l.as_str(), "\n"]).collect()
    }
}

/// Merges timing shard files. `order` holds the merged predictions' ids in benchmark order; the
/// timing lines come out in that order. Each line must be an [`ItemTiming`] whose id is in
/// `order` and appears in no other line; errors name the offending `file:line`. An incomplete last
/// line (no newline, not JSON) is left out and its file listed in [`MergedTimings::cut`].
pub fn merge_timings(files: &[impl AsRef<Path>], order: &[&str]) -> Result<MergedTimings> {
    let rank: HashMap<&str, usize> = order.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    // Per item: the line and where it came from (for the duplicate message).
    let mut slots: Vec<Option<(String, PathBuf, usize)>> = vec![None; order.len()];
    let mut cut = Vec::new();
    for file in files {
        let path = file.as_ref();
        let text = fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
        let complete = text.ends_with('\n');
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let timing: ItemTiming = match serde_json::from_str(line) {
                Ok(t) => t,
                Err(_) if !complete && i + 1 == lines.len() => {
                    cut.push(path.to_path_buf());
                    continue;
                }
                Err(e) => return Err(Error::jsonl(path, i + 1, format!("not a timing line: {e}"))),
            };
            let &slot = rank.get(timing.id.as_str()).ok_or_else(|| {
                Error::jsonl(
                    path,
                    i + 1,
                    format!("id `{}` has no merged prediction (a timing file of another run?)", timing.id),
                )
            })?;
            if let Some((_, first, first_line)) = &slots[slot] {
                return Err(Error::jsonl(
                    path,
                    i + 1,
                    format!("id `{}` is timed twice (also at {}:{first_line})", timing.id, first.display()),
                ));
            }
            slots[slot] = Some((line.to_string(), path.to_path_buf(), i + 1));
        }
    }
    let mut merged = MergedTimings { cut, ..MergedTimings::default() };
    for (id, slot) in order.iter().zip(slots) {
        match slot {
            Some((line, _, _)) => merged.lines.push(line),
            None => merged.missing.push(id.to_string()),
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(id: &str, total_ms: f64) -> String {
        format!(
            "{{\"id\":\"{id}\",\"batch\":1,\"provider\":\"CPUExecutionProvider\",\"preprocess_ms\":0.1,\
             \"vision_ms\":0.2,\"connector_ms\":0.3,\"prefill_ms\":0.4,\"decode_ms\":0.5,\"decode_steps\":2,\
             \"total_ms\":{total_ms}}}"
        )
    }

    fn write(dir: &Path, name: &str, lines: &[String], tail: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, lines.iter().map(|l| format!("{l}\n")).collect::<String>() + tail).unwrap();
        p
    }

    #[test]
    fn merges_in_benchmark_order_and_reports_gaps() {
        let t = tempfile::tempdir().unwrap();
        let a = write(t.path(), "a.jsonl", &[timing("d/2", 2.0), timing("d/0", 0.0)], "");
        // Killed mid-write: the last line is cut and left out.
        let b = write(t.path(), "b.jsonl", &[timing("d/1", 1.0)], &timing("d/3", 3.0)[..20]);
        let merged = merge_timings(&[&a, &b], &["d/0", "d/1", "d/2", "d/3", "d/4"]).unwrap();
        assert_eq!(merged.lines, vec![timing("d/0", 0.0), timing("d/1", 1.0), timing("d/2", 2.0)]);
        assert_eq!(merged.missing, vec!["d/3", "d/4"]);
        assert_eq!(merged.cut, vec![b]);
        assert_eq!(merged.text().lines().count(), 3);
        assert!(merged.text().ends_with('\n'));
    }

    #[test]
    fn duplicates_unknown_ids_and_bad_lines_name_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        let a = write(t.path(), "a.jsonl", &[timing("d/0", 0.0), timing("d/1", 1.0)], "");
        let dup = write(t.path(), "dup.jsonl", &["".into(), timing("d/1", 9.0)], "");
        let err = merge_timings(&[&a, &dup], &["d/0", "d/1"]).unwrap_err().to_string();
        assert!(
            err.contains("dup.jsonl:2") && err.contains("`d/1` is timed twice") && err.contains("a.jsonl:2"),
            "{err}"
        );

        let err = merge_timings(&[&a], &["d/0"]).unwrap_err().to_string();
        assert!(err.contains("a.jsonl:2") && err.contains("`d/1` has no merged prediction"), "{err}");

        // A bad line that is not the cut tail of the file is an error.
        let bad = write(t.path(), "bad.jsonl", &["{\"id\":1}".into(), timing("d/0", 0.0)], "");
        let err = merge_timings(&[&bad], &["d/0"]).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl:1") && err.contains("not a timing line"), "{err}");

        let err = merge_timings(&[t.path().join("absent.jsonl")], &["d/0"]).unwrap_err().to_string();
        assert!(err.contains("absent.jsonl"), "{err}");
    }
}
