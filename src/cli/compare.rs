//! `lynx-zoo eval | merge | bench | compare | report`: accuracy and latency across variants.
//! See docs/cli.md.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use lynx_zoo::bench::{self, BenchOptions, LatencyReport};
use lynx_zoo::data::Benchmark;
use lynx_zoo::eval::{self, EvalOptions, RunSpec, Shard, StaleResults};
use lynx_zoo::model::FeatureCache;
use lynx_zoo::report::{self, Comparison, Format, VariantResult};
use lynx_zoo::{GenerationOptions, Zoo};

use super::zoo::{RuntimeArgs, ZooArgs};

/// The benchmark and how to decode.
#[derive(Debug, Args)]
pub struct EvalSetArgs {
    /// The benchmark (Open-VQA JSONL); default: the committed test split.
    #[arg(long, default_value = "data/test/annotations.jsonl")]
    bench: PathBuf,
    /// Evaluate only the first N records.
    #[arg(long)]
    limit: Option<usize>,
    /// Results folder: OUT/VARIANT/{run.json, predictions.jsonl, timings.jsonl, latency.json}.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Items per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Beam width (1 = greedy, the default for evaluation: deterministic and fast).
    #[arg(long, default_value_t = 1)]
    beams: usize,
    /// Most new tokens per answer.
    #[arg(long, default_value_t = 24)]
    max_new_tokens: usize,
}

impl EvalSetArgs {
    fn generation(&self) -> anyhow::Result<GenerationOptions> {
        let g = GenerationOptions::greedy(self.max_new_tokens);
        Ok(if self.beams > 1 { g.with_beams(self.beams)? } else { g })
    }
}

/// Flags of `eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Variants to evaluate.
    #[arg(required = true)]
    variants: Vec<String>,
    #[command(flatten)]
    set: EvalSetArgs,
    /// Evaluate shard I of N (records whose position modulo N is I); merge with `lynx-zoo merge`.
    #[arg(long)]
    shard: Option<Shard>,
    #[command(flatten)]
    zoo: ZooArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

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

/// Latency options.
#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Image items and video items (each) timed from the benchmark.
    #[arg(long, default_value_t = 4)]
    items: usize,
    /// Untimed passes first.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed passes.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// The larger batch size timed besides batch 1.
    #[arg(long, default_value_t = 8)]
    bench_batch: usize,
}

/// Flags of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Variants to time.
    #[arg(required = true)]
    variants: Vec<String>,
    #[command(flatten)]
    set: EvalSetArgs,
    #[command(flatten)]
    latency: LatencyArgs,
    /// Output format of the table.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    zoo: ZooArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// Flags of `compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Variants to compare (default: every variant of the zoo).
    variants: Vec<String>,
    /// The variant others are tested against (default: `lynx` when present, else the first).
    #[arg(long)]
    baseline: Option<String>,
    #[command(flatten)]
    set: EvalSetArgs,
    #[command(flatten)]
    latency: LatencyArgs,
    /// Skip the latency measurement (accuracy only).
    #[arg(long)]
    no_latency: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(flatten)]
    zoo: ZooArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// Flags of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results folder written by `compare` (or `eval` + `bench`).
    #[arg(long, default_value = "results")]
    results: PathBuf,
    /// The baseline (default: `lynx` when present, else the first variant).
    #[arg(long)]
    baseline: Option<String>,
    /// The Markdown file to write; the part between `<!-- report:begin -->` and
    /// `<!-- report:end -->` is replaced, the rest kept.
    #[arg(long, default_value = "docs/results.md")]
    out: PathBuf,
    /// The SVG plot to write (linked from the Markdown).
    #[arg(long, default_value = "docs/results-accuracy-latency.svg")]
    plot: PathBuf,
}

fn progress_bar(name: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(name.to_string());
    bar
}

fn load_bench(path: &Path) -> anyhow::Result<Benchmark> {
    Benchmark::load(path).with_context(|| format!("loading the benchmark `{}` (see --bench)", path.display()))
}

/// What the variants of one `eval` or `compare` call share.
struct EvalRun<'a> {
    zoo: &'a Zoo,
    bench: &'a Benchmark,
    set: &'a EvalSetArgs,
    runtime: &'a RuntimeArgs,
    /// Vision features of shared frozen encoders, computed once per item.
    features: FeatureCache,
    stale: StaleResults,
}

impl<'a> EvalRun<'a> {
    fn new(
        zoo: &'a Zoo,
        bench: &'a Benchmark,
        set: &'a EvalSetArgs,
        runtime: &'a RuntimeArgs,
        stale: StaleResults,
    ) -> Self {
        EvalRun { zoo, bench, set, runtime, features: FeatureCache::new(), stale }
    }
}

/// Evaluates one variant (resuming), returning its sorted predictions of `shard`.
fn eval_variant(run: &EvalRun<'_>, name: &str, shard: Shard) -> anyhow::Result<Vec<eval::Prediction>> {
    let EvalRun { zoo, bench, set, runtime, features, stale } = run;
    let stale = *stale;
    let options = EvalOptions { limit: set.limit, shard, batch: set.batch, generation: set.generation()?, stale };
    let model = zoo.load(name, &runtime.options()?).with_context(|| format!("loading variant `{name}`"))?;
    // Accuracy only: shared frozen encoders run once per item across the variants of this call.
    let mut model = model.with_feature_cache(features.clone());
    let manifest_path = model.manifest().file.clone();
    let bar = progress_bar(name);
    let mut tick = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let (path, preds) = eval::evaluate(&mut model, &manifest_path, bench, &set.out, &options, &mut tick)?;
    bar.finish_and_clear();
    tracing::info!(variant = name, file = %path.display(), "predictions written");
    Ok(preds)
}

/// `lynx-zoo eval`.
pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let zoo = args.zoo.open()?;
    let bench = load_bench(&args.set.bench)?;
    let shard = args.shard.unwrap_or(Shard::ALL);
    let run = EvalRun::new(&zoo, &bench, &args.set, &args.runtime, StaleResults::Refuse);
    for name in &args.variants {
        let preds = eval_variant(&run, name, shard)?;
        let s = eval::summarize(&preds);
        let a = s.accuracy.overall;
        let file = args.set.out.join(name).join(shard.file_name());
        println!(
            "{name}: accuracy {:.1}% [{:.1}, {:.1}] on {} items{} -> {}",
            a.accuracy * 100.0,
            a.ci_low * 100.0,
            a.ci_high * 100.0,
            a.n,
            if shard == Shard::ALL { String::new() } else { format!(" (shard {shard})") },
            file.display()
        );
    }
    Ok(())
}

fn read_spec(dir: &Path) -> anyhow::Result<RunSpec> {
    let p = dir.join("run.json");
    let text = fs::read_to_string(&p)
        .with_context(|| format!("reading `{}` (was the variant evaluated into this folder?)", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing `{}`", p.display()))
}

/// `lynx-zoo merge`.
pub fn merge(args: MergeArgs) -> anyhow::Result<()> {
    for name in &args.variants {
        let dir = args.out.join(name);
        let spec = read_spec(&dir)?;
        let mut shards = Vec::new();
        let mut files = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("listing `{}`", dir.display()))? {
            let p = entry?.path();
            let file = p.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string();
            if file.starts_with("predictions.shard-") && file.ends_with(".jsonl") {
                shards.push(eval::read_predictions(&p)?);
                files.push(file);
            }
        }
        if shards.is_empty() {
            bail!("no shard files (predictions.shard-I-of-N.jsonl) in `{}`", dir.display());
        }
        let merged = eval::merge(&shards)?;
        let bench = load_bench(&spec.bench)?;
        let out = dir.join("predictions.jsonl");
        eval::check_complete(&bench, spec.limit, &merged, &dir)?;
        let mut text = String::new();
        for p in &merged {
            text.push_str(&serde_json::to_string(p)?);
            text.push('\n');
        }
        fs::write(&out, text).with_context(|| format!("writing `{}`", out.display()))?;
        println!(
            "{name}: merged {} shards ({}) into {} ({} items)",
            files.len(),
            files.join(", "),
            out.display(),
            merged.len()
        );
    }
    Ok(())
}

fn bench_options(l: &LatencyArgs, set: &EvalSetArgs) -> anyhow::Result<BenchOptions> {
    Ok(BenchOptions {
        warmup: l.warmup,
        repeats: l.repeats,
        items_per_modality: l.items,
        batch: l.bench_batch,
        generation: set.generation()?,
    })
}

fn measure_variant(
    zoo: &Zoo,
    name: &str,
    bench: &Benchmark,
    opts: &BenchOptions,
    runtime: &RuntimeArgs,
    out: &Path,
) -> anyhow::Result<LatencyReport> {
    bench::reset_peak_rss();
    let rt = runtime.options()?;
    let mut model = zoo.load(name, &rt).with_context(|| format!("loading variant `{name}`"))?;
    let items = bench::pick_items(bench, opts.items_per_modality);
    eprintln!("timing {name} on {} items ...", items.len());
    let report = bench::measure(&mut model, &items, &rt, opts).with_context(|| format!("timing `{name}`"))?;
    let dir = out.join(name);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("latency.json"), serde_json::to_string_pretty(&report)? + "\n")?;
    Ok(report)
}

fn result_of(
    zoo: &Zoo,
    name: &str,
    predictions: Vec<eval::Prediction>,
    latency: Option<LatencyReport>,
) -> anyhow::Result<VariantResult> {
    let m = zoo.manifest(name)?;
    Ok(VariantResult {
        name: name.to_string(),
        changes: m.changes.clone(),
        paper: m.paper.clone(),
        predictions,
        latency,
    })
}

/// `lynx-zoo bench`.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let zoo = args.zoo.open()?;
    let bench = load_bench(&args.set.bench)?;
    let opts = bench_options(&args.latency, &args.set)?;
    let mut results = Vec::new();
    for name in &args.variants {
        let report = measure_variant(&zoo, name, &bench, &opts, &args.runtime, &args.set.out)?;
        results.push(result_of(&zoo, name, Vec::new(), Some(report))?);
    }
    let baseline = results[0].name.clone();
    let c = Comparison::new(results, &baseline)?;
    println!("{}", report::render(&[c.latency_table()?], args.format)?);
    Ok(())
}

fn pick_baseline(names: &[String], asked: Option<&str>) -> anyhow::Result<String> {
    match asked {
        Some(b) if names.iter().any(|n| n == b) => Ok(b.to_string()),
        Some(b) => bail!("baseline `{b}` is not among the compared variants ({})", names.join(", ")),
        None if names.iter().any(|n| n == "lynx") => Ok("lynx".into()),
        None => names.first().cloned().context("no variants to compare"),
    }
}

/// `lynx-zoo compare`.
pub fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let zoo = args.zoo.open()?;
    let names: Vec<String> = if args.variants.is_empty() { zoo.variants().to_vec() } else { args.variants.clone() };
    if names.is_empty() {
        bail!("the zoo `{}` has no variants", zoo.root().display());
    }
    let baseline = pick_baseline(&names, args.baseline.as_deref())?;
    let bench = load_bench(&args.set.bench)?;
    let opts = bench_options(&args.latency, &args.set)?;
    let mut results = Vec::new();
    let run = EvalRun::new(&zoo, &bench, &args.set, &args.runtime, StaleResults::Replace);
    for name in &names {
        let preds = eval_variant(&run, name, Shard::ALL)?;
        let latency = if args.no_latency {
            None
        } else {
            Some(measure_variant(&zoo, name, &bench, &opts, &args.runtime, &args.set.out)?)
        };
        results.push(result_of(&zoo, name, preds, latency)?);
    }
    let (hits, misses) = run.features.stats();
    tracing::info!(hits, misses, "vision features shared across variants");
    let c = Comparison::new(results, &baseline)?;
    let summary = args.set.out.join("comparison.json");
    fs::write(&summary, serde_json::to_string_pretty(&c)? + "\n")
        .with_context(|| format!("writing `{}`", summary.display()))?;
    println!("{}", report::render(&c.tables()?, args.format)?);
    Ok(())
}

/// Reads every `results/VARIANT/` that holds a complete `predictions.jsonl`.
fn load_results(dir: &Path, zoo: Option<&Zoo>) -> anyhow::Result<Vec<VariantResult>> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .with_context(|| format!("listing `{}`", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("predictions.jsonl").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let d = dir.join(&name);
        let predictions = eval::read_predictions(d.join("predictions.jsonl"))?;
        let latency = match fs::read_to_string(d.join("latency.json")) {
            Ok(t) => Some(
                serde_json::from_str(&t).with_context(|| format!("parsing `{}`", d.join("latency.json").display()))?,
            ),
            Err(_) => None,
        };
        let (changes, paper) = match zoo.and_then(|z| z.manifest(&name).ok()) {
            Some(m) => (m.changes.clone(), m.paper.clone()),
            None => (None, None),
        };
        out.push(VariantResult { name, changes, paper, predictions, latency });
    }
    Ok(out)
}

const BEGIN: &str = "<!-- report:begin -->";
const END: &str = "<!-- report:end -->";

/// `lynx-zoo report`.
pub fn report(args: ReportArgs, zoo: &ZooArgs) -> anyhow::Result<()> {
    let zoo = zoo.open().ok();
    let results = load_results(&args.results, zoo.as_ref())?;
    if results.is_empty() {
        bail!("`{}` holds no results (run `lynx-zoo compare` first)", args.results.display());
    }
    let names: Vec<String> = results.iter().map(|r| r.name.clone()).collect();
    let baseline = pick_baseline(&names, args.baseline.as_deref())?;
    let c = Comparison::new(results, &baseline)?;
    let has_latency = c.rows.iter().any(|r| r.result.latency.is_some());
    if has_latency {
        report::plot::accuracy_vs_latency(&c, &args.plot)?;
    }
    let mut body = format!("{BEGIN}\n\n");
    body.push_str("Generated by `lynx-zoo report` from `");
    body.push_str(&args.results.display().to_string());
    body.push_str("`; do not edit between the markers.\n\n");
    body.push_str(&report::render(&c.tables()?, Format::Markdown)?);
    if has_latency {
        let rel = relative_link(&args.out, &args.plot);
        body.push_str(&format!("\n![accuracy against latency]({rel})\n"));
    }
    let papers: Vec<String> =
        c.rows
            .iter()
            .filter_map(|r| {
                r.result.paper.as_ref().map(|p| {
                    format!("| {} | {} | {} |", r.result.name, r.result.changes.clone().unwrap_or_default(), p)
                })
            })
            .collect();
    if !papers.is_empty() {
        body.push_str(
            "\n### What the paper reported for each axis\n\n| variant | changes | Lynx |\n| --- | --- | --- |\n",
        );
        body.push_str(&papers.join("\n"));
        body.push('\n');
    }
    body.push_str(&format!("\n{END}\n"));
    let existing = fs::read_to_string(&args.out).unwrap_or_default();
    let text = match (existing.find(BEGIN), existing.find(END)) {
        (Some(b), Some(e)) if b < e => format!("{}{}{}", &existing[..b], body.trim_end(), &existing[e + END.len()..]),
        _ if existing.is_empty() => format!("# Results\n\n{body}"),
        _ => format!("{}\n\n{body}", existing.trim_end()),
    };
    if let Some(dir) = args.out.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&args.out, text).with_context(|| format!("writing `{}`", args.out.display()))?;
    println!("{}", args.out.display());
    Ok(())
}

/// `plot` as a link relative to the folder of `doc`.
fn relative_link(doc: &Path, plot: &Path) -> String {
    match (doc.parent(), plot.parent()) {
        (Some(a), Some(b)) if a == b => plot.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        _ => plot.display().to_string(),
    }
}
