//! Loader for Open-VQA annotation files (Lynx, arXiv 2307.02469): one JSON object per line with
//! `dataset`, `question`, `answer` (a list of accepted answers), `index`, `image` or `video` (a
//! path relative to the file), and optional `origin_dataset` and `class`. Unknown keys are kept in
//! [`Record::extra`], so our generator's `response`, `instruction` and `phrasing` -- and whatever a
//! real file carries -- survive loading.
//!
//! The same loader reads the real `Open_VQA_images.jsonl` / `Open_VQA_videos.jsonl` when a user
//! has them and their media.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::classes::QuestionClass;
use crate::error::{Error, Result};
use crate::preprocess::{load_image, load_video, Media, DEFAULT_MAX_PIXELS};
use crate::score::{AnswerSpace, Expected, Instruction, Verdict};

/// One annotation line.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The `dataset` key.
    pub dataset: String,
    /// The question text.
    pub question: String,
    /// Accepted answers.
    pub answers: Vec<String>,
    /// The `index` key as written (a number or a string in the wild).
    pub index: String,
    /// The image or clip, resolved against the annotation file's folder: [`Media::Image`] or
    /// [`Media::Video`], as the model takes it.
    pub media: Media,
    /// The `origin_dataset` key, when present.
    pub origin_dataset: Option<String>,
    /// The `class` key, when present.
    pub class: Option<String>,
    /// Every other key, kept as written.
    pub extra: Map<String, Value>,
    /// The annotation file this record came from.
    pub file: PathBuf,
    /// 1-based line number in that file.
    pub line: usize,
}

impl Record {
    /// A stable identifier for pairing predictions: `dataset/index`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.dataset, self.index)
    }

    /// `file:line`, for error messages.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// The class, or `"all"` when the file has none.
    pub fn class_or_all(&self) -> &str {
        self.class.as_deref().unwrap_or("all")
    }

    /// The format the question asks for (our generator's `instruction` key), when any.
    pub fn instruction(&self) -> Option<Instruction> {
        self.extra.get("instruction").and_then(Value::as_str).and_then(Instruction::from_name)
    }

    /// The options the question offers that are wrong (our generator's `wrong_answers` key);
    /// empty for files without it.
    pub fn wrong_answers(&self) -> Vec<String> {
        match self.extra.get("wrong_answers") {
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    }

    /// The candidates an answer to this record can name: the class's answer space for records of
    /// our generator (`dataset: lynx-synth`); none for other files, whose classes we do not know.
    pub fn answer_space(&self) -> Option<&'static AnswerSpace> {
        if self.dataset != super::DATASET {
            return None;
        }
        self.class.as_deref().and_then(QuestionClass::from_name).map(QuestionClass::answer_space)
    }

    /// Scores a prediction with the benchmark's rule ([`crate::score::rule`]): this record's
    /// answers, wrong options, answer space and format instruction.
    pub fn judge(&self, prediction: &str) -> Verdict {
        let wrong = self.wrong_answers();
        Expected { answers: &self.answers, wrong: &wrong, space: self.answer_space(), instruction: self.instruction() }
            .judge(prediction)
    }

    /// Whether [`Record::judge`] counts `prediction` correct.
    pub fn is_correct(&self, prediction: &str) -> bool {
        self.judge(prediction).is_correct()
    }

    /// A string-valued extra key.
    pub fn extra_str(&self, key: &str) -> Option<&str> {
        self.extra.get(key).and_then(Value::as_str)
    }
}

/// A loaded annotation file.
#[derive(Debug, Clone)]
pub struct Benchmark {
    /// The annotation file.
    pub path: PathBuf,
    /// Its records, in file order.
    pub records: Vec<Record>,
}

fn take_string(obj: &mut Map<String, Value>, key: &str, path: &Path, line: usize) -> Result<Option<String>> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Error::jsonl(path, line, format!("key `{key}` must be a string, got {other}"))),
    }
}

fn require_string(obj: &mut Map<String, Value>, key: &str, path: &Path, line: usize) -> Result<String> {
    take_string(obj, key, path, line)?
        .ok_or_else(|| Error::jsonl(path, line, format!("missing key `{key}` (a string)")))
}

fn parse_line(text: &str, path: &Path, line: usize, base: &Path) -> Result<Record> {
    let value: Value = serde_json::from_str(text).map_err(|e| Error::jsonl(path, line, format!("bad JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(Error::jsonl(path, line, "expected a JSON object"));
    };
    let dataset = require_string(&mut obj, "dataset", path, line)?;
    let question = require_string(&mut obj, "question", path, line)?;
    if question.trim().is_empty() {
        return Err(Error::jsonl(path, line, "key `question` is empty"));
    }
    let answers = match obj.remove("answer") {
        None => return Err(Error::jsonl(path, line, "missing key `answer` (a list of strings)")),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s),
                    Value::Number(n) => out.push(n.to_string()),
                    other => {
                        return Err(Error::jsonl(path, line, format!("key `answer` must hold strings, got {other}")))
                    }
                }
            }
            out
        }
        Some(other) => {
            return Err(Error::jsonl(path, line, format!("key `answer` must be a list of strings, got {other}")))
        }
    };
    if answers.is_empty() {
        return Err(Error::jsonl(path, line, "key `answer` is an empty list"));
    }
    let index = match obj.remove("index") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s,
        None => return Err(Error::jsonl(path, line, "missing key `index` (a number or string)")),
        Some(other) => {
            return Err(Error::jsonl(path, line, format!("key `index` must be a number or string, got {other}")))
        }
    };
    let image = take_string(&mut obj, "image", path, line)?;
    let video = take_string(&mut obj, "video", path, line)?;
    let (kind, p) = match (image, video) {
        (Some(i), None) => ("image", base.join(i)),
        (None, Some(v)) => ("video", base.join(v)),
        (None, None) => {
            return Err(Error::jsonl(path, line, "missing key `image` or `video` (a path relative to the file)"))
        }
        (Some(_), Some(_)) => {
            return Err(Error::jsonl(path, line, "has both `image` and `video`; expected exactly one"))
        }
    };
    // Only regular files (and frame folders) are media: a FIFO would hang the run that reads it.
    match fs::metadata(&p) {
        Err(_) => return Err(Error::jsonl(path, line, format!("{kind} `{}` does not exist", p.display()))),
        Ok(m) if m.is_file() || (kind == "video" && m.is_dir()) => {}
        Ok(_) => {
            let expected = if kind == "video" { "a GIF or a folder of frames" } else { "an image file" };
            return Err(Error::jsonl(
                path,
                line,
                format!("{kind} `{}` is not a regular file; expected {expected}", p.display()),
            ));
        }
    }
    let media = if kind == "video" { Media::Video(p) } else { Media::Image(p) };
    let origin_dataset = take_string(&mut obj, "origin_dataset", path, line)?;
    let class = take_string(&mut obj, "class", path, line)?;
    Ok(Record {
        dataset,
        question,
        answers,
        index,
        media,
        origin_dataset,
        class,
        extra: obj,
        file: path.to_path_buf(),
        line,
    })
}

impl Benchmark {
    /// Loads an annotation file; every record's media must exist. Blank lines are skipped.
    /// Duplicate `dataset/index` pairs are an error (predictions are paired by them).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::files::read_text(path, crate::files::FileKind::Records)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut records = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let record = parse_line(line, path, i + 1, base)?;
            if let Some(first) = seen.insert(record.id(), i + 1) {
                return Err(Error::jsonl(
                    path,
                    i + 1,
                    format!("duplicate index `{}` (first on line {first})", record.id()),
                ));
            }
            records.push(record);
        }
        if records.is_empty() {
            return Err(Error::jsonl(path, 0, "no records"));
        }
        Ok(Self { path: path.to_path_buf(), records })
    }

    /// Number of records per class, sorted by class name.
    pub fn class_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in &self.records {
            *counts.entry(r.class_or_all().to_string()).or_insert(0) += 1;
        }
        counts
    }

    /// Decodes every image and every frame of every video, so that a corrupt file is found before
    /// a long evaluation; the error names the record's file and line. Returns the number of
    /// decoded pictures.
    pub fn verify_media(&self) -> Result<usize> {
        let mut decoded = 0;
        for r in &self.records {
            let at = |e: Error| Error::jsonl(&r.file, r.line, format!("cannot decode it: {e}"));
            if let Media::Video(gif) = &r.media {
                if !gif.is_dir() {
                    // Every frame of a GIF, within the same budget as an evaluation.
                    decoded += load_video(gif, 1, DEFAULT_MAX_PIXELS).map_err(at)?.len();
                    continue;
                }
            }
            for file in media_files(&r.media).map_err(|e| Error::jsonl(&r.file, r.line, e.to_string()))? {
                load_image(&file, DEFAULT_MAX_PIXELS).map_err(at)?;
                decoded += 1;
            }
        }
        Ok(decoded)
    }
}

/// The picture files of a record: the image, the sorted frames of a frame folder, or the GIF
/// (none for media that are not files: pixels, or nothing).
pub fn media_files(media: &Media) -> Result<Vec<PathBuf>> {
    match media {
        Media::Image(p) => Ok(vec![p.clone()]),
        Media::Video(p) if p.is_dir() => {
            let mut frames: Vec<PathBuf> = fs::read_dir(p)
                .map_err(|e| Error::io("listing", p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    let ext = f.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
                    matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg" | "webp" | "gif"))
                })
                .collect();
            frames.sort();
            if frames.is_empty() {
                return Err(Error::image(p, "video folder holds no frame images (png, jpg, webp, gif)"));
            }
            Ok(frames)
        }
        Media::Video(p) => Ok(vec![p.clone()]),
        Media::Pixels(_) | Media::None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p
    }

    fn png(dir: &Path, name: &str) {
        image::RgbImage::new(4, 4).save(dir.join(name)).unwrap();
    }

    #[test]
    fn loads_records_and_keeps_unknown_keys() {
        let t = tempfile::tempdir().unwrap();
        png(t.path(), "a.png");
        fs::create_dir(t.path().join("clip")).unwrap();
        png(&t.path().join("clip"), "f1.png");
        let p = write(
            t.path(),
            "ann.jsonl",
            concat!(
                r#"{"dataset":"d","question":"q?","answer":["x","y"],"index":1,"image":"a.png","class":"ocr","response":"X","instruction":"one_word"}"#,
                "\n\n",
                r#"{"dataset":"d","question":"v?","answer":"up","index":"2","video":"clip","origin_dataset":"o"}"#,
                "\n"
            ),
        );
        let b = Benchmark::load(&p).unwrap();
        assert_eq!(b.records.len(), 2);
        let r = &b.records[0];
        assert_eq!(r.answers, vec!["x", "y"]);
        assert_eq!(r.extra_str("response"), Some("X"));
        assert_eq!(r.instruction(), Some(Instruction::OneWord));
        assert_eq!(r.media, Media::Image(t.path().join("a.png")));
        let v = &b.records[1];
        assert_eq!(v.line, 3);
        assert_eq!(v.answers, vec!["up"]);
        assert_eq!(v.id(), "d/2");
        assert_eq!(b.verify_media().unwrap(), 2);
    }

    #[test]
    fn errors_name_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        png(t.path(), "a.png");
        let good = r#"{"dataset":"d","question":"q","answer":["x"],"index":1,"image":"a.png"}"#;
        let cases = [
            ("{not json", "bad JSON"),
            (r#"{"dataset":"d","question":"q","index":2,"image":"a.png"}"#, "missing key `answer`"),
            (r#"{"dataset":"d","question":"q","answer":["x"],"index":2}"#, "missing key `image` or `video`"),
            (r#"{"dataset":"d","question":"q","answer":["x"],"index":2,"image":"gone.png"}"#, "does not exist"),
            (r#"{"dataset":"d","question":"q","answer":["x"],"index":1,"image":"a.png"}"#, "duplicate index"),
            (r#"{"dataset":"d","question":" ","answer":["x"],"index":2,"image":"a.png"}"#, "`question` is empty"),
            (r#"{"dataset":"d","question":"q","answer":[],"index":2,"image":"a.png"}"#, "empty list"),
        ];
        for (bad, expect) in cases {
            let p = write(t.path(), "ann.jsonl", &format!("{good}\n{bad}\n"));
            let err = Benchmark::load(&p).unwrap_err().to_string();
            assert!(err.contains("ann.jsonl:2"), "{err}");
            assert!(err.contains(expect), "{err} lacks {expect}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_as_media_is_refused_when_the_file_is_loaded() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("a.png");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let p = write(
            t.path(),
            "ann.jsonl",
            concat!(r#"{"dataset":"d","question":"q","answer":["x"],"index":1,"image":"a.png"}"#, "\n"),
        );
        let err = Benchmark::load(&p).unwrap_err().to_string();
        assert!(err.contains("ann.jsonl:1") && err.contains("a.png` is not a regular file"), "{err}");
    }

    #[test]
    fn an_unreadable_png_is_reported_with_its_line() {
        let t = tempfile::tempdir().unwrap();
        png(t.path(), "a.png");
        fs::write(t.path().join("b.png"), b"\x89PNG\r\n\x1a\ngarbage").unwrap();
        let p = write(
            t.path(),
            "ann.jsonl",
            concat!(
                r#"{"dataset":"d","question":"q","answer":["x"],"index":1,"image":"a.png"}"#,
                "\n",
                r#"{"dataset":"d","question":"q","answer":["x"],"index":2,"image":"b.png"}"#,
                "\n"
            ),
        );
        let b = Benchmark::load(&p).unwrap();
        let err = b.verify_media().unwrap_err().to_string();
        assert!(err.contains("ann.jsonl:2") && err.contains("b.png"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let err = Benchmark::load("/nonexistent/ann.jsonl").unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ann.jsonl"), "{err}");
    }
}
