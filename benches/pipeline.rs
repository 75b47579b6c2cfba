//! criterion benchmarks of each stage of the pipeline, for the baseline (prefix through a
//! resampler) and the cross-attention variant: preprocessing, vision encoder + connector +
//! prefill, a decode step, and end-to-end `ask`; and, without a graph, the token choice of greedy
//! decoding at a deployed model's vocabulary (`token choice/...`).
//!
//! The zoo is `$LYNX_ZOO_DIR`, else this checkout when it ships `variants/lynx.yaml` and
//! `variants/lynx-xattn.yaml`, else the fixture zoo (`tiny`, `tiny-xattn`). Run with
//! `cargo bench --bench pipeline`; results and how to read them: docs/results.md.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use lynx_zoo::generate::{generate, SpecialTokens, StepDecoder};
use lynx_zoo::{GenerationOptions, Media, RuntimeOptions, Zoo};
use ndarray::Array2;

fn zoo_and_variants() -> (Zoo, [String; 2]) {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shipped = ["lynx", "lynx-xattn"].map(|v| repo.join("variants").join(format!("{v}.yaml")).is_file());
    let (dir, names) = match std::env::var_os("LYNX_ZOO_DIR") {
        Some(d) => (PathBuf::from(d), ["lynx".to_string(), "lynx-xattn".to_string()]),
        None if shipped.iter().all(|&s| s) => (repo.clone(), ["lynx".to_string(), "lynx-xattn".to_string()]),
        None => (repo.join("tests/fixtures/runtime/zoo"), ["tiny".to_string(), "tiny-xattn".to_string()]),
    };
    eprintln!("benchmarking {} and {} from `{}`", names[0], names[1], dir.display());
    match Zoo::open(&dir) {
        Ok(zoo) => (zoo, names),
        Err(e) => panic!("cannot open the zoo `{}`: {e}", dir.display()),
    }
}

/// The first `n` questions of the test split.
fn test_questions(repo: &Path, n: usize) -> Vec<String> {
    let path = repo.join("data/test/annotations.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let question = |line: &str| -> Option<String> {
        Some(serde_json::from_str::<serde_json::Value>(line).ok()?.get("question")?.as_str()?.to_string())
    };
    text.lines()
        .take(n)
        .map(|l| question(l).unwrap_or_else(|| panic!("{}: a line without a question", path.display())))
        .collect()
}

fn stages(c: &mut Criterion) {
    let (zoo, names) = zoo_and_variants();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let image = Media::image(repo.join("data/test/images/000003.png"));
    let video = Media::video(repo.join("data/test/videos/000008"));
    let question = "How many?";
    // One intra-op thread per session: the comparison is about the graphs, not the thread pool.
    let options = match RuntimeOptions::new().with_intra_threads(1) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    for name in &names {
        let mut model = match zoo.load(name, &options) {
            Ok(m) => m,
            Err(e) => panic!("cannot load `{name}`: {e}"),
        };
        let mut group = c.benchmark_group(name.as_str());
        group.sample_size(30);
        // Tokenization alone: one short question, and the test split's questions in turn (each
        // different from the last, as in `eval`).
        let text = model.text().clone();
        group.bench_function("tokenize/short question", |b| b.iter(|| text.prompt(question).map(|p| p.ids.len())));
        let questions = test_questions(&repo, 200);
        let mut k = 0;
        group.bench_function("tokenize/test questions", |b| {
            b.iter(|| {
                k = (k + 1) % questions.len();
                text.prompt(&questions[k]).map(|p| p.ids.len())
            })
        });
        if let Some(pre) = model.preprocessor().cloned() {
            group.bench_function("preprocess/image", |b| b.iter(|| pre.pixels(&image).map(|p| p.len())));
            group.bench_function("preprocess/video", |b| b.iter(|| pre.pixels(&video).map(|p| p.len())));
            let pixels = match pre.pixels(&image) {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            group.bench_function("vision+connector+prefill", |b| {
                b.iter_batched(
                    || vec![pixels.clone()],
                    |px| model.prefill_logits(&px, &[question]).map(|p| p.last_logits.len()),
                    BatchSize::SmallInput,
                )
            });
        }
        let one = GenerationOptions::greedy(1);
        let nine = GenerationOptions::greedy(9).with_min_new_tokens(9).unwrap_or_else(|_| GenerationOptions::greedy(9));
        group.bench_function("ask/1 token", |b| b.iter(|| model.ask(&image, question, &one).map(|a| a.tokens.len())));
        // Nine tokens minus one token = eight decode steps; criterion reports both, the docs the difference / 8.
        group.bench_function("ask/9 tokens", |b| b.iter(|| model.ask(&image, question, &nine).map(|a| a.tokens.len())));
        let default = GenerationOptions::greedy(24);
        group.bench_function("ask/end to end (image)", |b| {
            b.iter(|| model.ask(&image, question, &default).map(|a| a.text.len()))
        });
        group.bench_function("ask/end to end (video)", |b| {
            b.iter(|| model.ask(&video, question, &default).map(|a| a.text.len()))
        });
        group.finish();
    }
}

/// A decoder whose every step returns the same logits: what is timed is generation's own work per
/// token (the finiteness check, bans, argmax and the chosen token's log-probability), plus a copy
/// of the row per token (timed on its own, to subtract).
struct SameLogits(Array2<f32>);

impl StepDecoder for SameLogits {
    fn step(&mut self, _tokens: &[i64]) -> lynx_zoo::Result<Array2<f32>> {
        Ok(self.0.clone())
    }

    fn select_rows(&mut self, _rows: &[usize]) -> lynx_zoo::Result<()> {
        Ok(())
    }
}

/// Greedy token choice over Qwen2's 151 936 logits, 16 tokens per iteration (divide by 16).
fn token_choice(c: &mut Criterion) {
    let vocab = 151_936;
    // deterministic, logit-like scores in [-12, 12)
    let row = Array2::from_shape_fn((1, vocab), |(_, i)| ((i * 7919 + 13) % 4099) as f32 / 4099.0 * 24.0 - 12.0);
    let options =
        GenerationOptions::greedy(16).with_min_new_tokens(16).unwrap_or_else(|_| GenerationOptions::greedy(16));
    let special = SpecialTokens { eos: 2, pad: 0 };
    let mut group = c.benchmark_group("token choice");
    group.bench_function("greedy/16 tokens, vocab 151936", |b| {
        b.iter(|| generate(row.clone(), &mut SameLogits(row.clone()), &options, special).map(|g| g.len()))
    });
    group
        .bench_function("copy of one row (the baseline to subtract)", |b| b.iter(|| std::hint::black_box(row.clone())));
    group.finish();
}

criterion_group!(benches, token_choice, stages);
criterion_main!(benches);
