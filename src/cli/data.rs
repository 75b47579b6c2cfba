//! `lynx-zoo data ...`: generate the synthetic benchmark and language data, check annotation files.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

use lynx_zoo::benchmark::Benchmark;
use lynx_zoo::data::{self, GenerateConfig, Knobs, Split};
use lynx_zoo::eval;
use lynx_zoo::report::{self, Comparison, Floor, Format, VariantResult};

/// The `data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Generate a seeded split of the synthetic Open-VQA benchmark (images, videos, annotations.jsonl, captions.jsonl).
    Generate(GenerateArgs),
    /// Generate the text corpus and text instructions for the language backbones.
    Text(TextArgs),
    /// Load an Open-VQA annotation file, decode all of its media and print counts per class.
    Check(CheckArgs),
    /// Score predictions made by any model (`{"id", "prediction"}` JSONL) with the benchmark's scorer.
    Score(ScoreArgs),
}

/// Flags of `data generate`; the knobs are documented in docs/benchmark.md.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Which split; only `test` carries held-out phrasings and instructions.
    #[arg(long, value_enum)]
    split: Split,
    /// Number of items (classes take turns).
    #[arg(long)]
    n: usize,
    /// Seed; the same command and seed give byte-identical output.
    #[arg(long)]
    seed: u64,
    /// Output folder (created; must not hold generated files unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace generated files already in --out.
    #[arg(long)]
    force: bool,
    /// Canvas side in pixels.
    #[arg(long, default_value_t = Knobs::default().canvas)]
    canvas: u32,
    /// Frames per video clip.
    #[arg(long, default_value_t = Knobs::default().frames)]
    frames: usize,
    /// Most objects per scene / counted objects.
    #[arg(long, default_value_t = Knobs::default().max_objects)]
    max_objects: usize,
    /// Most distractor objects per scene.
    #[arg(long, default_value_t = Knobs::default().distractors)]
    distractors: usize,
    /// OCR font pixel size in image pixels (smaller text needs higher resolution).
    #[arg(long, default_value_t = Knobs::default().text_scale)]
    text_scale: u32,
    /// Smallest radius of small objects in pixels.
    #[arg(long, default_value_t = Knobs::default().small_radius.0)]
    small_min: f32,
    /// Largest radius of small objects in pixels.
    #[arg(long, default_value_t = Knobs::default().small_radius.1)]
    small_max: f32,
}

/// Flags of `data text`.
#[derive(Debug, Args)]
pub struct TextArgs {
    /// Number of corpus passages and of text instructions.
    #[arg(long)]
    n: usize,
    /// Seed.
    #[arg(long)]
    seed: u64,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// The foundation's text: everyday English, paraphrase families and the held-out words in
    /// other contexts besides the world's sentences (never a held-out phrasing).
    #[arg(long)]
    foundation: bool,
}

/// Flags of `data check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The annotation file (Open-VQA JSONL).
    file: PathBuf,
}

/// Flags of `data score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The annotation file (Open-VQA JSONL) the predictions answer.
    #[arg(long, default_value = "data/test/annotations.jsonl")]
    bench: PathBuf,
    /// Predictions files, one line per record: `{"id": "dataset/index", "prediction": "...",
    /// "question": "..."}` (`question` optional but checked: generated splits share ids); each is a
    /// row named after its file stem (or folder, for `DIR/predictions.jsonl`), the first is the
    /// baseline of the paired tests.
    #[arg(required = true)]
    predictions: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Which table (`accuracy` or `per-class`); default: both for `table`/`markdown`, `accuracy`
    /// for `csv`/`json`.
    #[arg(long, value_enum)]
    table: Option<ScoreTable>,
}

/// The tables of `data score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreTable {
    /// Overall accuracy, differences with corrected p-values, the floor.
    Accuracy,
    /// Accuracy per class.
    PerClass,
}

/// Runs a `data` subcommand.
pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Generate(a) => {
            let defaults = Knobs::default();
            let knobs = Knobs {
                canvas: a.canvas,
                frames: a.frames,
                max_objects: a.max_objects,
                distractors: a.distractors,
                text_scale: a.text_scale,
                small_radius: (a.small_min, a.small_max),
                ..defaults
            };
            let cfg = GenerateConfig { split: a.split, n: a.n, seed: a.seed, knobs, force: a.force };
            let start = Instant::now();
            let summary =
                data::generate(&cfg, &a.out).with_context(|| format!("generating into `{}`", a.out.display()))?;
            eprintln!("generated {} items in {:.1}s", summary.items, start.elapsed().as_secs_f64());
            println!("{}", summary.annotations.display());
            Ok(())
        }
        DataCommand::Text(a) => {
            let write = if a.foundation { data::generate_foundation_text } else { data::generate_text };
            write(a.n, a.seed, &a.out).with_context(|| format!("generating text into `{}`", a.out.display()))?;
            println!("{}", a.out.join("corpus.txt").display());
            println!("{}", a.out.join("text_instructions.jsonl").display());
            Ok(())
        }
        DataCommand::Check(a) => {
            let bench = Benchmark::load(&a.file)?;
            let pictures = bench.verify_media()?;
            println!("{}: {} records, {} pictures decoded", a.file.display(), bench.records.len(), pictures);
            for (class, n) in bench.class_counts() {
                println!("  {class:<12} {n}");
            }
            Ok(())
        }
        DataCommand::Score(a) => score(&a),
    }
}

/// A predictions file's row name: its stem, or its folder's name for `DIR/predictions.jsonl`
/// (the layout `lynx-zoo eval` writes).
fn row_name(path: &std::path::Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("predictions");
    let folder = path.parent().and_then(|p| p.file_name()).and_then(|s| s.to_str());
    match (stem, folder) {
        ("predictions", Some(folder)) => folder.to_string(),
        _ => stem.to_string(),
    }
}

/// `data score`: one accuracy row per predictions file, paired tests against the first, the
/// majority floor as a row of its own.
fn score(a: &ScoreArgs) -> anyhow::Result<()> {
    let bench = Benchmark::load(&a.bench)?;
    let mut results = Vec::with_capacity(a.predictions.len());
    for path in &a.predictions {
        let name = row_name(path);
        if results.iter().any(|r: &VariantResult| r.name == name) {
            bail!("two predictions files are named `{name}`; rename one (rows are named after the file)");
        }
        results.push(VariantResult::scored(name, eval::score_external(&bench, path)?));
    }
    let baseline = results[0].name.clone();
    let floor = eval::MajorityFloor::for_benchmark(&bench)?;
    let floor = Floor { description: floor.describe(), predictions: floor.predictions(&bench, None) };
    let c = Comparison::new(results, &baseline, Some(floor))?;
    let tables = match a.table {
        Some(ScoreTable::PerClass) => vec![c.per_class_table()?],
        None if matches!(a.format, Format::Table | Format::Markdown) => vec![c.accuracy_table()?, c.per_class_table()?],
        _ => vec![c.accuracy_table()?],
    };
    println!("{}", report::render(&tables, a.format)?);
    Ok(())
}
