//! Bounded fuzzing of every parser of untrusted input: variant manifests (YAML), benchmark
//! annotations (Open-VQA JSONL), predictions (JSONL, ours and other models'), and media bytes
//! (PNG, JPEG, GIF, WebP through the preprocessing path). Each target must never panic and must
//! answer every input within a time limit; it runs for a fixed time, so CI time stays fixed.
//!
//! A seeded mutation loop rather than `proptest`: the inputs that matter are small edits of valid
//! files (a flipped header byte, a duplicated line, a number made huge), which byte and line
//! mutations of a corpus reach directly, while a generator would have to be written per format; it
//! stops at a deadline instead of after a case count, so a slow machine runs fewer cases but no
//! longer; and it needs no new dependency (`rand_chacha` is already ours). Inputs whose error
//! message is new join the corpus (a cheap stand-in for coverage feedback), so mutations build on
//! inputs that got further. See "Fuzzing" in docs/architecture.md.
//!
//! ```text
//! LYNX_FUZZ_SECONDS=600 cargo test --release --test integration fuzz:: -- --nocapture --test-threads 1
//! ```
//!
//! `LYNX_FUZZ_SECONDS` is the time per target (default 15: 4 targets, one minute in all; `bash
//! scripts/test` sets 6);
//! `LYNX_FUZZ_SEED` changes the sequence (default 14). A failure prints the seed and case and
//! writes the input under `target/fuzz-findings/`; each finding becomes a named test in
//! `fuzz/regressions.rs`.

use std::collections::HashMap;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use lynx_zoo::benchmark::Benchmark;
use lynx_zoo::eval::{read_numbered_predictions, score_answer, score_external, PredictionStore};
use lynx_zoo::manifest::{CropMode, FrameSampling, Manifest, PreprocessSpec, ResizeFilter, SizeRounding, VideoSpec};
use lynx_zoo::preprocess::{Media, Preprocessor};
use lynx_zoo::results::rescore;

use crate::common;
#[path = "fuzz/regressions.rs"]
mod regressions;

/// Seconds per target.
fn seconds() -> u64 {
    std::env::var("LYNX_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(15)
}

/// The longest one input may take.
const CASE_LIMIT: Duration = Duration::from_secs(5);

/// Tokens that parsers of text treat specially, spliced in by the mutator.
#[rustfmt::skip]
const TEXT_TOKENS: &[&str] = &[
    "\n", "\"", "'", "{", "}", "[", "]", ",", ":", ": ", "- ", "null", "~", "true", "0", "-1", "1e999", "-0.0", ".nan",
    ".inf", "-.inf", "NaN", "18446744073709551616", "4294967296", "99999999999999999999999", "\\u0000", "\\ud800",
    "&a ", "*a", "<<: *a", "!!binary ", "!!str ", "? ", "|\n", ">\n", "\t", "#", "%YAML 1.2\n", "---\n", "...\n",
    "\u{feff}", "é", "\u{1F600}", "../", "/etc/passwd", "",
];

/// Byte values and 16/32-bit numbers that hit edges in binary headers.
const EDGE_BYTES: &[u8] = &[0, 1, 0x7f, 0x80, 0xfe, 0xff];
const EDGE_WORDS: &[u32] = &[0, 1, 2, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 6000, 0x10000, 0x7fff_ffff, 0xffff_ffff];

/// One input changed by 1 to 4 random edits (and sometimes spliced with another input).
fn mutate(rng: &mut ChaCha8Rng, input: &[u8], corpus: &[Vec<u8>], text: bool) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = v.len();
        let at = if len == 0 { 0 } else { rng.random_range(0..len) };
        match rng.random_range(0..10) {
            0 if len > 0 => v[at] ^= 1 << rng.random_range(0..8),
            1 if len > 0 => v[at] = EDGE_BYTES[rng.random_range(0..EDGE_BYTES.len())],
            2 if len >= 4 => {
                let w = EDGE_WORDS[rng.random_range(0..EDGE_WORDS.len())];
                let at = rng.random_range(0..=len - 4);
                let bytes = if rng.random_bool(0.5) { w.to_le_bytes() } else { w.to_be_bytes() };
                let n = if rng.random_bool(0.5) { 2 } else { 4 };
                v[at..at + n].copy_from_slice(&bytes[..n]);
            }
            3 if len > 0 => {
                let end = (at + rng.random_range(1..=16)).min(len);
                v.drain(at..end);
            }
            4 if len > 0 => {
                // Repeat a stretch (a line, a chunk, a frame).
                let end = (at + rng.random_range(1..=64)).min(len);
                let chunk = v[at..end].to_vec();
                let times = if rng.random_bool(0.1) { rng.random_range(2..64) } else { 1 };
                for _ in 0..times {
                    v.splice(at..at, chunk.iter().copied());
                }
            }
            5 if text => {
                let t = TEXT_TOKENS[rng.random_range(0..TEXT_TOKENS.len())];
                v.splice(at..at, t.bytes());
            }
            6 if text => line_edit(rng, &mut v),
            7 if !corpus.is_empty() => {
                // Splice: our head, another input's tail.
                let other = &corpus[rng.random_range(0..corpus.len())];
                let from = if other.is_empty() { 0 } else { rng.random_range(0..other.len()) };
                v.truncate(at);
                v.extend_from_slice(&other[from..]);
            }
            8 => v.truncate(at),
            _ => {
                let n = rng.random_range(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random::<u8>()).collect();
                v.splice(at..at, bytes);
            }
        }
    }
    // Text parsers first refuse invalid UTF-8; keep most text cases valid so they get further.
    if text && rng.random_ratio(9, 10) {
        v = String::from_utf8_lossy(&v).into_owned().into_bytes();
    }
    v
}

/// Deletes, duplicates or swaps whole lines.
fn line_edit(rng: &mut ChaCha8Rng, v: &mut Vec<u8>) {
    let mut lines: Vec<Vec<u8>> = v.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.is_empty() {
        return;
    }
    let i = rng.random_range(0..lines.len());
    let j = rng.random_range(0..lines.len());
    match rng.random_range(0..3) {
        0 => {
            lines.remove(i);
        }
        1 => {
            let l = lines[i].clone();
            lines.insert(j, l);
        }
        _ => lines.swap(i, j),
    }
    *v = lines.join(&b'\n');
}

/// What a fuzz run did.
#[derive(Debug, Default)]
struct Stats {
    cases: u64,
    accepted: u64,
    refused: u64,
    distinct_errors: usize,
    slowest: Duration,
}

/// An error message with its numbers and quoted values masked, so that messages of one kind count
/// once.
fn error_kind(message: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in message.chars().take(160) {
        match c {
            '`' => {
                quoted = !quoted;
                out.push('`');
            }
            _ if quoted => {}
            '0'..='9' => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Runs `target` on mutations of `seeds` for `seconds()` seconds. `target` returns `Err(message)`
/// when it refuses an input (fine) and must neither panic nor take longer than [`CASE_LIMIT`].
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, text: bool, mut target: impl FnMut(&[u8]) -> Result<(), String>) -> Stats {
    let seed: u64 = std::env::var("LYNX_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(14);
    let salt = name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ salt);
    let deadline = Instant::now() + Duration::from_secs(seconds());
    let mut corpus = seeds;
    let mut kinds: HashMap<String, u64> = HashMap::new();
    let mut stats = Stats::default();
    // The seeds themselves first (they must be accepted or refused cleanly too).
    let mut queue: Vec<Vec<u8>> = corpus.clone();
    while Instant::now() < deadline || !queue.is_empty() {
        let input = match queue.pop() {
            Some(i) => i,
            None => {
                let base = corpus[rng.random_range(0..corpus.len())].clone();
                mutate(&mut rng, &base, &corpus, text)
            }
        };
        let started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input)));
        let took = started.elapsed();
        stats.cases += 1;
        stats.slowest = stats.slowest.max(took);
        let finding = match &outcome {
            Err(_) => Some("panicked"),
            Ok(_) if took > CASE_LIMIT => Some("took too long"),
            Ok(_) => None,
        };
        if let Some(what) = finding {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings");
            fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{name}-seed{seed}-case{}.bin", stats.cases));
            fs::write(&file, &input).unwrap();
            panic!(
                "fuzz target `{name}` {what} ({took:?}) on case {} (LYNX_FUZZ_SEED={seed}); input kept in {}",
                stats.cases,
                file.display()
            );
        }
        match outcome {
            Ok(Ok(())) => {
                stats.accepted += 1;
                // Some accepted variations widen the base of later mutations.
                if corpus.len() < 512 && rng.random_ratio(1, 20) {
                    corpus.push(input);
                }
            }
            Ok(Err(message)) => {
                stats.refused += 1;
                let count = kinds.entry(error_kind(&message)).or_insert(0);
                *count += 1;
                if *count == 1 && corpus.len() < 512 {
                    corpus.push(input);
                }
            }
            Err(_) => {}
        }
    }
    stats.distinct_errors = kinds.len();
    let mut common: Vec<(&String, &u64)> = kinds.iter().collect();
    common.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (kind, n) in common.iter().take(3) {
        eprintln!("fuzz {name}: {n} x {}", kind.chars().take(110).collect::<String>());
    }
    eprintln!(
        "fuzz {name}: {} cases in {} s ({} accepted, {} refused, {} kinds of error, slowest {:?})",
        stats.cases,
        seconds(),
        stats.accepted,
        stats.refused,
        stats.distinct_errors,
        stats.slowest
    );
    stats
}

/// Asserts that a run did real work: many cases, both outcomes.
fn assert_exercised(name: &str, s: &Stats) {
    assert!(s.cases >= 50, "{name}: only {} cases", s.cases);
    assert!(s.accepted > 0 && s.refused > 0, "{name}: one outcome only: {s:?}");
}

#[test]
fn fuzz_manifest() {
    // A copy of the fixture zoo, so that a manifest's paths resolve and validation goes deep.
    let t = tempfile::tempdir().unwrap();
    common::copy_dir(&common::repo().join("tests/fixtures/runtime/zoo"), t.path());
    // The open fixture zoo's graphs and goldens beside them (its tokenizer's name is taken), so
    // that the imported `llava-tiny` resolves too.
    let open = common::repo().join("tests/fixtures/runtime/open-zoo");
    for rel in ["onnx/vision.onnx", "onnx/projector.onnx", "onnx/embed.onnx", "onnx/decoder-gqa.onnx"] {
        fs::copy(open.join(rel), t.path().join(rel)).unwrap();
    }
    fs::copy(open.join("onnx/goldens/llava-tiny.json"), t.path().join("onnx/goldens/llava-tiny.json")).unwrap();
    let mut seeds: Vec<Vec<u8>> = vec![fs::read(open.join("variants/llava-tiny.yaml")).unwrap()];
    for dir in [t.path().join("variants"), common::repo().join("variants")] {
        let mut files: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        seeds.extend(files.iter().take(6).map(|f| fs::read(f).unwrap()));
    }
    // Each case is written under the name its `name:` field asks for, when it has one.
    let root = t.path().to_path_buf();
    let stats = fuzz("manifest", seeds, true, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("name: "))
            .map(|n| n.trim().to_string())
            .filter(|n| (1..=100).contains(&n.len()) && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or_else(|| "fuzz".into());
        let file = root.join("variants").join(format!("{name}.yaml"));
        fs::write(&file, bytes).unwrap();
        let out = Manifest::from_file(&file, &root).map(|_| ()).map_err(|e| e.to_string());
        fs::remove_file(&file).unwrap();
        out
    });
    assert_exercised("manifest", &stats);
}

#[test]
fn fuzz_annotations() {
    let t = tempfile::tempdir().unwrap();
    let good = fs::read(common::short_bench(t.path(), 9)).unwrap();
    let extra = br#"{"dataset":"t","question":"How many?","answer":["5","five"],"index":"x-1","image":"m/b.png","class":"counting","instruction":"one_word","phrasing":"heldout","origin_dataset":"o"}
{"dataset":"t","question":"Read it","answer":["LYNX"],"index":12,"image":"m/a.png","class":"ocr"}
"#;
    let seeds = vec![good.clone(), extra.to_vec(), [good, extra.to_vec()].concat()];
    let file = t.path().join("fuzz.jsonl");
    let stats = fuzz("annotations", seeds, true, |bytes| {
        fs::write(&file, bytes).unwrap();
        let b = Benchmark::load(&file).map_err(|e| e.to_string())?;
        // What evaluation then does with each record: ids, scoring, answer spaces.
        let _ = b.class_counts();
        for (i, r) in b.records.iter().enumerate() {
            let _ = (r.id(), r.location(), r.instruction(), r.wrong_answers(), r.answer_space());
            for answer in ["", "square", "5", "five", "LYNX", "A: square.", "\u{0}"] {
                let _ = (r.judge(answer), score_answer(r, i, answer, 1));
            }
        }
        Ok(())
    });
    assert_exercised("annotations", &stats);
}

#[test]
fn fuzz_predictions() {
    let t = tempfile::tempdir().unwrap();
    let bench = Benchmark::load(common::short_bench(t.path(), 9)).unwrap();
    let answers = ["square", "5", "left", "circle", "", "five", "right", "x", "square"];
    let ours: String = bench
        .records
        .iter()
        .zip(answers)
        .enumerate()
        .map(|(i, (r, a))| serde_json::to_string(&score_answer(r, i, a, 2)).unwrap() + "\n")
        .collect();
    let external: String = bench
        .records
        .iter()
        .zip(answers)
        .map(|(r, a)| serde_json::json!({"id": r.id(), "prediction": a, "question": r.question}).to_string() + "\n")
        .collect();
    let seeds = vec![ours.into_bytes(), external.into_bytes()];
    let file = t.path().join("predictions.jsonl");
    let expected = bench.records.iter().enumerate().map(|(i, r)| (r.id(), i)).collect();
    let stats = fuzz("predictions", seeds, true, |bytes| {
        // `data score` of another model's file.
        fs::write(&file, bytes).unwrap();
        let external = score_external(&bench, &file).map(|_| ()).map_err(|e| e.to_string());
        // `report` re-scoring our own file.
        let ours = read_numbered_predictions(&file).and_then(|p| rescore(&bench, &p, &file)).map(|_| ());
        // A resumed `eval` (the store may cut an incomplete last line).
        let resumed = PredictionStore::open(&file).and_then(|s| s.check_resumed(&expected, "the items"));
        match (external, ours, resumed) {
            (Ok(()), _, _) | (_, Ok(()), Ok(())) => Ok(()),
            (Err(e), _, _) => Err(e),
        }
    });
    assert_exercised("predictions", &stats);
}

/// Small valid pictures of every format the runtime reads.
fn image_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use image::{ImageEncoder, Rgba, RgbaImage};
    let img = RgbaImage::from_fn(12, 9, |x, y| Rgba([(x * 20) as u8, (y * 25) as u8, 90, 255]));
    let rgb = image::DynamicImage::ImageRgba8(img.clone()).to_rgb8();
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
        .write_image(rgb.as_raw(), 12, 9, image::ExtendedColorType::Rgb8)
        .unwrap();
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .write_image(img.as_raw(), 12, 9, image::ExtendedColorType::Rgba8)
        .unwrap();
    let mut gif = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut gif);
        for shade in [0u8, 120, 240] {
            enc.encode_frame(image::Frame::new(RgbaImage::from_pixel(10, 8, Rgba([shade, 60, 200, 255])))).unwrap();
        }
    }
    vec![
        ("png", fs::read(common::repo().join("tests/fixtures/runtime/media/scene.png")).unwrap()),
        ("png", fs::read(common::repo().join("tests/fixtures/runtime/media/clip/frame_00.png")).unwrap()),
        ("jpg", jpeg),
        ("webp", webp),
        ("gif", gif),
    ]
}

#[test]
fn fuzz_media() {
    let t = tempfile::tempdir().unwrap();
    let spec = PreprocessSpec {
        size: 8,
        resize: ResizeFilter::Bicubic,
        crop: CropMode::Center,
        size_rounding: SizeRounding::HalfEven,
        rescale: 1.0 / 255.0,
        mean: [0.5; 3],
        std: [0.5; 3],
    };
    // A smaller budget than the default keeps cases fast; the budget's own edge is tested in
    // tests/integration/runtime_preprocess.rs.
    let prep =
        Preprocessor::new(spec, VideoSpec { frames: 2, sampling: FrameSampling::Uniform }).with_max_pixels(1 << 20);
    let seeds: Vec<Vec<u8>> = image_seeds().into_iter().map(|(_, b)| b).collect();
    let file = t.path().join("media.bin");
    let stats = fuzz("media", seeds, false, |bytes| {
        fs::write(&file, bytes).unwrap();
        let image = prep.pixels(&Media::image(&file));
        let video = prep.pixels(&Media::video(&file));
        for px in [&image, &video].into_iter().flatten() {
            assert!(px.iter().all(|v| v.is_finite()), "non-finite pixels");
        }
        match (image, video) {
            (Ok(_), _) | (_, Ok(_)) => Ok(()),
            (Err(e), _) => Err(e.to_string()),
        }
    });
    assert_exercised("media", &stats);
}
