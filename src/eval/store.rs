//! Per-item predictions on disk, written as they are made and safe to interrupt.
//!
//! Each finished item is one JSON line, appended and flushed at once. A run killed at any moment
//! (even SIGKILL in the middle of a write) leaves at most one incomplete last line; reopening the
//! store truncates it and reports which items are done, so a resumed run redoes nothing and ends
//! with the same file as an uninterrupted one. Only deterministic fields go here -- timings live
//! in their own file -- so "the same file" means byte-identical.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::benchmark::Benchmark;
use crate::error::{Error, Result};

/// One scored answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// `dataset/index` of the benchmark record.
    pub id: String,
    /// Position of the record in the benchmark file (for ordering merged shards).
    pub position: usize,
    /// The record's class.
    pub class: String,
    /// The answer text.
    pub prediction: String,
    /// Scored correct by [`crate::benchmark::Record::is_correct`].
    pub correct: bool,
    /// The format the question asked for, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// Whether the answer has the asked-for format (only with an instruction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follows: Option<bool>,
    /// `seen` or `heldout` phrasing, when the record says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phrasing: Option<String>,
    /// Number of generated tokens.
    pub new_tokens: usize,
}

/// An append-only JSONL file of `T`, one per line, resumable after a crash.
#[derive(Debug)]
pub struct JsonlAppender {
    path: PathBuf,
    file: File,
}

impl JsonlAppender {
    /// Opens (creating) `path` for appending, first cutting an incomplete last line left by a
    /// killed run. Returns the appender and the complete, non-blank lines already there, each with
    /// its 1-based line number in the file.
    pub fn open(path: impl AsRef<Path>) -> Result<(Self, Vec<(usize, String)>)> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        }
        let mut lines = Vec::new();
        if path.exists() {
            let bytes = fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
            let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if complete < bytes.len() {
                tracing::warn!(path = %path.display(), dropped = bytes.len() - complete, "cutting an incomplete last line (interrupted run)");
                let f = OpenOptions::new().write(true).open(&path).map_err(|e| Error::io("opening", &path, e))?;
                f.set_len(complete as u64).map_err(|e| Error::io("truncating", &path, e))?;
            }
            let reader = BufReader::new(&bytes[..complete]);
            for (i, line) in reader.lines().enumerate() {
                let line = line.map_err(|e| Error::io("reading", &path, e))?;
                if !line.trim().is_empty() {
                    lines.push((i + 1, line));
                }
            }
        }
        let file =
            OpenOptions::new().create(true).append(true).open(&path).map_err(|e| Error::io("opening", &path, e))?;
        Ok((Self { path, file }, lines))
    }

    /// Appends one value as a line and flushes it to the operating system.
    pub fn append<T: Serialize>(&mut self, value: &T) -> Result<()> {
        let mut line = serde_json::to_vec(value)
            .map_err(|e| Error::io("serialising for", &self.path, std::io::Error::other(e)))?;
        line.push(b'\n');
        // One write call per line: a kill leaves either the whole line or a cut tail that the
        // next open removes.
        self.file.write_all(&line).map_err(|e| Error::io("appending to", &self.path, e))?;
        self.file.flush().map_err(|e| Error::io("flushing", &self.path, e))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The predictions of one variant on one benchmark (or one shard of it).
#[derive(Debug)]
pub struct PredictionStore {
    appender: JsonlAppender,
    done: Vec<Prediction>,
    /// The file line of each of `done` read back on opening.
    lines: Vec<usize>,
    done_ids: HashSet<String>,
}

impl PredictionStore {
    /// Opens or resumes `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let (appender, read) = JsonlAppender::open(path)?;
        let mut done = Vec::with_capacity(read.len());
        let mut lines = Vec::with_capacity(read.len());
        for (line, text) in &read {
            let p: Prediction = serde_json::from_str(text)
                .map_err(|e| Error::jsonl(appender.path(), *line, format!("not a prediction line: {e}")))?;
            done.push(p);
            lines.push(*line);
        }
        let done_ids = done.iter().map(|p| p.id.clone()).collect();
        Ok(Self { appender, done, lines, done_ids })
    }

    /// Checks the predictions read back on opening against the items of the run, `expected`
    /// (id to benchmark position; `scope` describes them for the message): each must be one of
    /// them, at its position, and appear once. A file written by two runs at once, edited by hand
    /// or copied from another run is refused with its `file:line`.
    pub fn check_resumed(&self, expected: &HashMap<String, usize>, scope: &str) -> Result<()> {
        let numbered: Vec<(usize, &Prediction)> = self.lines.iter().copied().zip(&self.done).collect();
        check_ids(self.path(), &numbered, expected, scope)
    }

    /// Whether the record `id` already has a prediction.
    pub fn is_done(&self, id: &str) -> bool {
        self.done_ids.contains(id)
    }

    /// Records and persists a prediction.
    pub fn push(&mut self, p: Prediction) -> Result<()> {
        self.appender.append(&p)?;
        self.done_ids.insert(p.id.clone());
        self.done.push(p);
        Ok(())
    }

    /// Every prediction so far, in the order they were made.
    pub fn predictions(&self) -> &[Prediction] {
        &self.done
    }

    /// The file.
    pub fn path(&self) -> &Path {
        self.appender.path()
    }
}

/// Reads a finished predictions file.
pub fn read_predictions(path: impl AsRef<Path>) -> Result<Vec<Prediction>> {
    Ok(read_numbered_predictions(path)?.into_iter().map(|(_, p)| p).collect())
}

/// Reads a finished predictions file, each prediction with its 1-based line in the file (blank
/// lines are skipped but counted), for messages that point at a line.
pub fn read_numbered_predictions(path: impl AsRef<Path>) -> Result<Vec<(usize, Prediction)>> {
    let path = path.as_ref();
    let text = crate::files::read_text(path, crate::files::FileKind::Records)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map(|p| (i + 1, p))
                .map_err(|e| Error::jsonl(path, i + 1, format!("not a prediction line: {e}")))
        })
        .collect()
}

/// Checks numbered predictions of `file` against `expected` (id to benchmark position): an id
/// not among them (`scope` says which items they are), at another position, or seen before is an
/// error naming `file:line`.
pub fn check_ids(
    file: &Path,
    predictions: &[(usize, &Prediction)],
    expected: &HashMap<String, usize>,
    scope: &str,
) -> Result<()> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(predictions.len());
    for &(line, p) in predictions {
        let Some(&position) = expected.get(&p.id) else {
            return Err(Error::jsonl(file, line, format!("id `{}` is not among {scope}", p.id)));
        };
        if p.position != position {
            return Err(Error::jsonl(
                file,
                line,
                format!("id `{}` says position {} but is at position {position} of {scope}", p.id, p.position),
            ));
        }
        if let Some(first) = seen.insert(&p.id, line) {
            return Err(Error::jsonl(
                file,
                line,
                format!(
                    "id `{}` appears twice (first on line {first}): were two runs writing this file at once?",
                    p.id
                ),
            ));
        }
    }
    Ok(())
}

/// One line of a predictions file made by another model: the benchmark record's `dataset/index`
/// id, the answer text and, optionally, the question it answers (checked, because generated splits
/// share ids). Other keys are ignored.
#[derive(Debug, Deserialize)]
struct ExternalPrediction {
    id: String,
    prediction: String,
    #[serde(default)]
    question: Option<String>,
}

/// Reads and scores a predictions file made outside lynx-zoo (`{"id", "prediction"}` per line,
/// optionally `"question"`) against `bench`, in benchmark order. Every record needs exactly one
/// line: bad JSON, a missing key, an id the benchmark does not hold, a repeated id and missing
/// items are errors naming the file (and line).
pub fn score_external(bench: &Benchmark, path: impl AsRef<Path>) -> Result<Vec<Prediction>> {
    let path = path.as_ref();
    let text = crate::files::read_text(path, crate::files::FileKind::Records)?;
    let position: HashMap<String, usize> = bench.records.iter().enumerate().map(|(i, r)| (r.id(), i)).collect();
    let mut answers: Vec<Option<String>> = vec![None; bench.records.len()];
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let p: ExternalPrediction = serde_json::from_str(line).map_err(|e| {
            Error::jsonl(path, i + 1, format!("expected {{\"id\": \"dataset/index\", \"prediction\": \"...\"}}: {e}"))
        })?;
        let &pos = position
            .get(&p.id)
            .ok_or_else(|| Error::jsonl(path, i + 1, format!("id `{}` is not in the benchmark", p.id)))?;
        let asked = &bench.records[pos].question;
        if p.question.as_ref().is_some_and(|q| q != asked) {
            return Err(Error::jsonl(
                path,
                i + 1,
                format!("id `{}` answers another question than the benchmark's `{asked}`: another split?", p.id),
            ));
        }
        if answers[pos].replace(p.prediction).is_some() {
            return Err(Error::jsonl(path, i + 1, format!("id `{}` appears twice", p.id)));
        }
    }
    let missing: Vec<String> =
        bench.records.iter().zip(&answers).filter(|(_, a)| a.is_none()).map(|(r, _)| r.id()).collect();
    if !missing.is_empty() {
        return Err(Error::Mismatch(format!(
            "`{}` has no prediction for {} of {} items (e.g. {})",
            path.display(),
            missing.len(),
            bench.records.len(),
            missing.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(bench
        .records
        .iter()
        .zip(answers)
        .enumerate()
        .map(|(i, (r, a))| super::score_answer(r, i, a.as_deref().unwrap_or_default(), 0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(i: usize) -> Prediction {
        Prediction {
            id: format!("d/{i}"),
            position: i,
            class: "c".into(),
            prediction: format!("answer {i}"),
            correct: i.is_multiple_of(2),
            instruction: None,
            follows: None,
            phrasing: None,
            new_tokens: 2,
        }
    }

    #[test]
    fn resumes_after_a_cut_line_and_ends_identical() {
        let t = tempfile::tempdir().unwrap();
        let whole = t.path().join("whole.jsonl");
        let mut s = PredictionStore::open(&whole).unwrap();
        for i in 0..5 {
            s.push(pred(i)).unwrap();
        }
        let expected = fs::read(&whole).unwrap();

        // An interrupted run: two lines and half of the third.
        let cut = t.path().join("cut.jsonl");
        let mut s = PredictionStore::open(&cut).unwrap();
        s.push(pred(0)).unwrap();
        s.push(pred(1)).unwrap();
        drop(s);
        let mut bytes = fs::read(&cut).unwrap();
        bytes.extend_from_slice(&serde_json::to_vec(&pred(2)).unwrap()[..10]);
        fs::write(&cut, bytes).unwrap();

        let mut s = PredictionStore::open(&cut).unwrap();
        assert_eq!(s.predictions().len(), 2);
        for i in 0..5 {
            if !s.is_done(&format!("d/{i}")) {
                s.push(pred(i)).unwrap();
            }
        }
        assert_eq!(fs::read(&cut).unwrap(), expected);
        assert_eq!(read_predictions(&cut).unwrap().len(), 5);
    }

    #[test]
    fn a_corrupt_complete_line_is_an_error_with_its_line() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("p.jsonl");
        fs::write(&p, format!("{}\n{{\"id\":1}}\n", serde_json::to_string(&pred(0)).unwrap())).unwrap();
        let err = PredictionStore::open(&p).unwrap_err().to_string();
        assert!(err.contains("p.jsonl:2"), "{err}");
    }
}
