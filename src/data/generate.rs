//! The seeded generator of the synthetic Open-VQA benchmark: renders every item's image or clip,
//! phrases its question, and writes `annotations.jsonl`, `captions.jsonl` and `meta.json`
//! (docs/contract.md section 1).
//!
//! Determinism: item `i` of split `s` with seed `k` draws from its own ChaCha8 stream seeded by
//! `(k, s, i)`, so output is byte-identical for the same command whatever the thread count, and
//! the splits never share a stream.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder, RgbImage};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::phrasing::{fill, instruction_texts, templates, Instruction, Phrasing};
use super::render::render;
use super::tasks::{build, QuestionClass, Task, TaskMedia};
use crate::benchmark::DATASET;
use crate::error::{Error, Result};

/// Version of the generator; bump when output for a given seed changes.
pub const GENERATOR_VERSION: &str = "1";
/// The `origin_dataset` key of every generated record.
pub const ORIGIN_DATASET: &str = "lynx-synth-v1";

/// A benchmark split. The test split alone carries held-out phrasings and instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training items.
    Train,
    /// Validation items (same distribution as train).
    Val,
    /// Test items (half of them phrased from the held-out pools).
    Test,
}

impl Split {
    fn tag(self) -> u64 {
        match self {
            Split::Train => 0x7472_6169_6e00_0001,
            Split::Val => 0x7661_6c00_0000_0002,
            Split::Test => 0x7465_7374_0000_0003,
        }
    }
}

/// Difficulty knobs of the generator (docs/benchmark.md explains what each one stresses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Knobs {
    /// Side of the square canvas in pixels.
    pub canvas: u32,
    /// Frames per video clip; events are spread over them.
    pub frames: usize,
    /// Most objects of the counted kind (counting), and of a scene (object, colour, ...).
    pub max_objects: usize,
    /// Most distractor objects added to a scene.
    pub distractors: usize,
    /// Radius range of small objects in pixels (small objects need resolution).
    pub small_radius: (f32, f32),
    /// Radius range of big objects in pixels.
    pub big_radius: (f32, f32),
    /// Font pixel size of OCR text in image pixels (5x7 glyphs; 2 means 10x14-pixel letters).
    pub text_scale: u32,
    /// Share of seen-phrasing questions that carry a format instruction.
    pub instruction_rate: f64,
    /// Share of test items phrased from the held-out pools (always with a held-out instruction).
    pub heldout_rate: f64,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            canvas: 128,
            frames: 8,
            max_objects: 6,
            distractors: 2,
            small_radius: (5.0, 7.0),
            big_radius: (12.0, 16.0),
            text_scale: 2,
            instruction_rate: 0.3,
            heldout_rate: 0.5,
        }
    }
}

impl Knobs {
    /// Checks that the knobs can produce valid items.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &'static str, value: String, expected: &str| {
            Err(Error::InvalidArgument { what, value, expected: expected.into() })
        };
        if !(32..=1024).contains(&self.canvas) {
            return bad("canvas", self.canvas.to_string(), "between 32 and 1024 pixels");
        }
        if !(2..=64).contains(&self.frames) {
            return bad("frames", self.frames.to_string(), "between 2 and 64");
        }
        if !(2..=10).contains(&self.max_objects) {
            return bad("max-objects", self.max_objects.to_string(), "between 2 and 10");
        }
        if self.distractors > 6 {
            return bad("distractors", self.distractors.to_string(), "at most 6");
        }
        if !(1..=8).contains(&self.text_scale) {
            return bad("text-scale", self.text_scale.to_string(), "between 1 and 8");
        }
        let (s0, s1) = self.small_radius;
        let (b0, b1) = self.big_radius;
        if !(s0 >= 1.0 && s0 <= s1 && s1 < b0 && b0 <= b1 && b1 * 4.0 < self.canvas as f32) {
            return bad(
                "radius ranges",
                format!("small {s0}..{s1}, big {b0}..{b1}"),
                "1 <= small.min <= small.max < big.min <= big.max < canvas/4",
            );
        }
        for (what, v) in [("instruction-rate", self.instruction_rate), ("heldout-rate", self.heldout_rate)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(what, v.to_string(), "a share between 0 and 1");
            }
        }
        Ok(())
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// Which split.
    pub split: Split,
    /// Number of items; classes take turns, so each gets n/11.
    pub n: usize,
    /// Seed of the whole split.
    pub seed: u64,
    /// Difficulty.
    pub knobs: Knobs,
    /// Replace an existing output folder's generated files.
    pub force: bool,
}

/// One annotation line, Open-VQA keys first (docs/contract.md section 1).
#[derive(Debug, Serialize)]
struct AnnotationLine<'a> {
    dataset: &'a str,
    question: String,
    answer: &'a [String],
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<String>,
    origin_dataset: &'a str,
    class: &'a str,
    response: String,
    instruction: Option<&'a str>,
    phrasing: &'a str,
    modality: &'a str,
    canonical_question: String,
    canonical_response: &'a str,
    wrong_answers: &'a [String],
}

#[derive(Debug, Serialize)]
struct CaptionLine<'a> {
    image: &'a str,
    caption: &'a str,
}

/// What a generation run wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Items written.
    pub items: usize,
    /// Items per class, in [`QuestionClass::ALL`] order.
    pub per_class: Vec<(String, usize)>,
    /// Path of `annotations.jsonl`.
    pub annotations: PathBuf,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The random stream of item `index`.
fn item_rng(seed: u64, split: Split, index: usize) -> ChaCha8Rng {
    let base = splitmix64(splitmix64(seed) ^ split.tag());
    ChaCha8Rng::seed_from_u64(splitmix64(base ^ index as u64))
}

/// The class of item `index`: classes take turns, so every class gets its share.
pub fn class_of(index: usize) -> QuestionClass {
    QuestionClass::ALL[index % QuestionClass::ALL.len()]
}

fn encode_png(img: &RgbImage, path: &Path) -> Result<()> {
    let file = fs::File::create(path).map_err(|e| Error::io("creating", path, e))?;
    let mut w = BufWriter::new(file);
    PngEncoder::new_with_quality(&mut w, CompressionType::Best, FilterType::Adaptive)
        .write_image(img.as_raw(), img.width(), img.height(), ExtendedColorType::Rgb8)
        .map_err(|e| Error::image(path, format!("cannot encode PNG: {e}")))?;
    w.flush().map_err(|e| Error::io("writing", path, e))
}

/// A generated item, rendered and written; its lines are assembled in index order afterwards.
struct Written {
    annotation: String,
    caption: Option<String>,
}

pub(super) fn phrase(
    task: &Task,
    split: Split,
    rng: &mut ChaCha8Rng,
    knobs: &Knobs,
) -> (String, Option<Instruction>, Phrasing) {
    let heldout = split == Split::Test && rng.random_bool(knobs.heldout_rate);
    let phrasing = if heldout { Phrasing::Heldout } else { Phrasing::Seen };
    let template = templates(task.class, phrasing).choose(rng).copied().unwrap_or("");
    let question = fill(template, &task.slots);
    let instruction = (heldout || rng.random_bool(knobs.instruction_rate)).then(|| task.class.instruction());
    match instruction {
        Some(ins) => {
            let pool = instruction_texts(ins, phrasing);
            let text = pool.choose(rng).copied().unwrap_or("");
            (format!("{question} {text}"), Some(ins), phrasing)
        }
        None => (question, None, phrasing),
    }
}

fn generate_item(cfg: &GenerateConfig, index: usize, out: &Path) -> Result<Written> {
    let knobs = &cfg.knobs;
    let mut rng = item_rng(cfg.seed, cfg.split, index);
    let class = class_of(index);
    let task = build(class, &mut rng, knobs);
    let (question, instruction, phrasing) = phrase(&task, cfg.split, &mut rng, knobs);
    let canonical_question = fill(templates(class, Phrasing::Seen)[0], &task.slots);
    let (image, video) = match &task.media {
        TaskMedia::Image(scene) => {
            let rel = format!("images/{index:06}.png");
            encode_png(&render(scene, knobs.canvas, task.background), &out.join(&rel))?;
            (Some(rel), None)
        }
        TaskMedia::Video(frames) => {
            let rel = format!("videos/{index:06}");
            let dir = out.join(&rel);
            fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
            for (k, frame) in frames.iter().enumerate() {
                encode_png(&render(frame, knobs.canvas, task.background), &dir.join(format!("frame_{k:02}.png")))?;
            }
            (None, Some(rel))
        }
    };
    let response = task.response(instruction);
    let line = AnnotationLine {
        dataset: DATASET,
        question,
        answer: &task.answers,
        index,
        image: image.clone(),
        video,
        origin_dataset: ORIGIN_DATASET,
        class: class.name(),
        response,
        instruction: instruction.map(Instruction::name),
        phrasing: phrasing.name(),
        modality: class.modality().name(),
        canonical_question,
        canonical_response: &task.sentence,
        wrong_answers: &task.wrong,
    };
    let annotation =
        serde_json::to_string(&line).map_err(|e| Error::image(out, format!("cannot serialise item {index}: {e}")))?;
    let caption = match &image {
        Some(img) => Some(
            serde_json::to_string(&CaptionLine { image: img, caption: &task.caption })
                .map_err(|e| Error::image(out, format!("cannot serialise caption {index}: {e}")))?,
        ),
        None => None,
    };
    Ok(Written { annotation, caption })
}

/// The class and accepted answers of every item of a split, as [`generate`] would write them,
/// without rendering or phrasing anything: what the majority floor needs (`eval::controls`).
pub fn answers(split: Split, n: usize, seed: u64, knobs: &Knobs) -> Result<Vec<(QuestionClass, Vec<String>)>> {
    knobs.validate()?;
    Ok((0..n)
        .map(|i| {
            let mut rng = item_rng(seed, split, i);
            let class = class_of(i);
            (class, build(class, &mut rng, knobs).answers)
        })
        .collect())
}

/// What `meta.json` says about a generated split.
#[derive(Debug, Clone, Deserialize)]
pub struct SplitMeta {
    /// The `dataset` of its records.
    pub dataset: String,
    /// Which split.
    pub split: Split,
    /// Items.
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// Difficulty.
    pub knobs: Knobs,
}

impl SplitMeta {
    /// Reads `meta.json` beside an annotation file; `None` when there is none (a file not made by
    /// our generator).
    pub fn beside(annotations: &Path) -> Result<Option<SplitMeta>> {
        let path = annotations.parent().unwrap_or(Path::new(".")).join("meta.json");
        if !path.is_file() {
            return Ok(None);
        }
        let text = fs::read_to_string(&path).map_err(|e| Error::io("reading", &path, e))?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::jsonl(&path, 1, format!("not the meta.json of a generated split: {e}")))
    }
}

fn prepare_out(out: &Path, force: bool) -> Result<()> {
    let generated = ["annotations.jsonl", "captions.jsonl", "meta.json", "images", "videos"];
    let existing: Vec<&str> = generated.iter().copied().filter(|f| out.join(f).exists()).collect();
    if !existing.is_empty() {
        if !force {
            return Err(Error::InvalidArgument {
                what: "--out",
                value: out.display().to_string(),
                expected: format!("an empty or new folder (it holds {}); pass --force to replace", existing.join(", ")),
            });
        }
        for f in existing {
            let p = out.join(f);
            let r = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
            r.map_err(|e| Error::io("removing", &p, e))?;
        }
    }
    for sub in ["images", "videos"] {
        let p = out.join(sub);
        fs::create_dir_all(&p).map_err(|e| Error::io("creating", &p, e))?;
    }
    Ok(())
}

/// Generates a split into `out` with as many threads as the machine has cores.
pub fn generate(cfg: &GenerateConfig, out: &Path) -> Result<Summary> {
    cfg.knobs.validate()?;
    if cfg.n == 0 {
        return Err(Error::InvalidArgument { what: "--n", value: "0".into(), expected: "at least 1 item".into() });
    }
    prepare_out(out, cfg.force)?;
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(cfg.n);
    let mut slots: Vec<Option<Written>> = (0..cfg.n).map(|_| None).collect();
    let results: Vec<Result<Vec<(usize, Written)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    (w..cfg.n).step_by(workers).map(|i| generate_item(cfg, i, out).map(|x| (i, x))).collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(Error::image(out, "a generator thread panicked"))))
            .collect()
    });
    for r in results {
        for (i, w) in r? {
            slots[i] = Some(w);
        }
    }
    let ann_path = out.join("annotations.jsonl");
    let cap_path = out.join("captions.jsonl");
    let mut ann = BufWriter::new(fs::File::create(&ann_path).map_err(|e| Error::io("creating", &ann_path, e))?);
    let mut cap = BufWriter::new(fs::File::create(&cap_path).map_err(|e| Error::io("creating", &cap_path, e))?);
    let mut per_class = vec![0usize; QuestionClass::ALL.len()];
    for (i, w) in slots.into_iter().enumerate() {
        let Some(w) = w else { return Err(Error::image(out, format!("item {i} was not generated"))) };
        per_class[i % QuestionClass::ALL.len()] += 1;
        writeln!(ann, "{}", w.annotation).map_err(|e| Error::io("writing", &ann_path, e))?;
        if let Some(c) = w.caption {
            writeln!(cap, "{c}").map_err(|e| Error::io("writing", &cap_path, e))?;
        }
    }
    ann.flush().map_err(|e| Error::io("writing", &ann_path, e))?;
    cap.flush().map_err(|e| Error::io("writing", &cap_path, e))?;
    let summary = Summary {
        items: cfg.n,
        per_class: QuestionClass::ALL.iter().zip(per_class).map(|(c, n)| (c.name().to_string(), n)).collect(),
        annotations: ann_path,
    };
    let meta = serde_json::json!({
        "generator": "lynx-zoo data generate",
        "generator_version": GENERATOR_VERSION,
        "dataset": DATASET,
        "split": cfg.split,
        "n": cfg.n,
        "seed": cfg.seed,
        "knobs": cfg.knobs,
        "per_class": summary.per_class,
    });
    let meta_path = out.join("meta.json");
    let text = serde_json::to_string_pretty(&meta).map_err(|e| Error::image(&meta_path, e.to_string()))?;
    fs::write(&meta_path, text + "\n").map_err(|e| Error::io("writing", &meta_path, e))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(split: Split, n: usize, seed: u64) -> GenerateConfig {
        GenerateConfig { split, n, seed, knobs: Knobs::default(), force: false }
    }

    fn read_all(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((p.strip_prefix(dir).unwrap().to_path_buf(), fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
        generate(&cfg(Split::Train, 30, 5), &a).unwrap();
        generate(&cfg(Split::Train, 30, 5), &b).unwrap();
        generate(&cfg(Split::Train, 30, 6), &c).unwrap();
        let (fa, fb, fc) = (read_all(&a), read_all(&b), read_all(&c));
        assert!(fa.len() > 30);
        assert_eq!(fa, fb);
        assert_ne!(fs::read(a.join("annotations.jsonl")).unwrap(), fs::read(c.join("annotations.jsonl")).unwrap());
        assert_ne!(fa, fc);
    }

    #[test]
    fn splits_differ_and_only_test_has_heldout_phrasings() {
        let t = tempfile::tempdir().unwrap();
        generate(&cfg(Split::Train, 44, 1), &t.path().join("train")).unwrap();
        generate(&cfg(Split::Test, 44, 1), &t.path().join("test")).unwrap();
        let train = fs::read_to_string(t.path().join("train/annotations.jsonl")).unwrap();
        let test = fs::read_to_string(t.path().join("test/annotations.jsonl")).unwrap();
        assert_ne!(train, test);
        assert!(!train.contains("\"phrasing\":\"heldout\""));
        assert!(test.contains("\"phrasing\":\"heldout\""));
        for ins in Instruction::ALL {
            for h in instruction_texts(ins, Phrasing::Heldout) {
                assert!(!train.contains(h), "held-out instruction {h:?} leaked into train");
            }
        }
    }

    #[test]
    fn answers_match_the_written_split() {
        let t = tempfile::tempdir().unwrap();
        let c = cfg(Split::Test, 22, 5);
        generate(&c, t.path()).unwrap();
        let text = fs::read_to_string(t.path().join("annotations.jsonl")).unwrap();
        let written: Vec<Vec<String>> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["answer"].clone())
            .map(|a| serde_json::from_value(a).unwrap())
            .collect();
        let quick = answers(Split::Test, 22, 5, &c.knobs).unwrap();
        assert_eq!(quick.into_iter().map(|(_, a)| a).collect::<Vec<_>>(), written);
        let meta = SplitMeta::beside(&t.path().join("annotations.jsonl")).unwrap().unwrap();
        assert_eq!((meta.seed, meta.n, meta.split), (5, 22, Split::Test));
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let t = tempfile::tempdir().unwrap();
        generate(&cfg(Split::Val, 3, 1), t.path()).unwrap();
        let err = generate(&cfg(Split::Val, 3, 1), t.path()).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        let mut c = cfg(Split::Val, 2, 1);
        c.force = true;
        generate(&c, t.path()).unwrap();
        assert_eq!(fs::read_to_string(t.path().join("annotations.jsonl")).unwrap().lines().count(), 2);
        assert!(!t.path().join("images/000002.png").exists());
    }

    #[test]
    fn bad_knobs_are_rejected_with_the_knob_named() {
        let k = Knobs { frames: 1, ..Knobs::default() };
        assert!(k.validate().unwrap_err().to_string().contains("frames"));
        let k = Knobs { small_radius: (9.0, 13.0), ..Knobs::default() };
        assert!(k.validate().unwrap_err().to_string().contains("radius"));
    }
}
