//! `lynx-zoo eval | bench | compare | report`: accuracy and latency across variants, with the
//! floors, controls and corrected statistics of a trustworthy verdict. See docs/cli.md.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};

use lynx_zoo::bench::{self, BenchOptions, LatencyReport};
use lynx_zoo::benchmark::Benchmark;
use lynx_zoo::eval::{self, Control, EvalOptions, MajorityFloor, Shard, ShardSpec, StaleResults};
use lynx_zoo::manifest::{Origin, VisionInput};
use lynx_zoo::model::{self, FeatureCache, Model};
use lynx_zoo::report::markdown;
use lynx_zoo::report::{self, Comparison, Floor, Format, Imported, Table, TableName, VariantResult, DEFAULT_TABLES};
use lynx_zoo::results::{self, ResultsDir};
use lynx_zoo::{GenerationOptions, Zoo};

use super::bounds;
use super::progress::Progress;
use super::zoo::{RuntimeArgs, ZooArgs};

/// The benchmark and how to decode.
#[derive(Debug, Args)]
pub struct EvalSetArgs {
    /// The benchmark (Open-VQA JSONL); default: the committed test split.
    #[arg(long, default_value = "data/test/annotations.jsonl")]
    bench: PathBuf,
    /// Evaluate only the first N records (1 to 10 000 000).
    #[arg(long, value_parser = bounds::positive(bounds::MAX_LIMIT))]
    limit: Option<usize>,
    /// Results folder: OUT/VARIANT/{run.json, predictions.jsonl, timings.jsonl, latency.json}.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Items per batch (1 to 256).
    #[arg(long, default_value_t = 8, value_parser = bounds::positive(bounds::MAX_BATCH))]
    batch: usize,
    /// Beam width (1 = greedy, the default for evaluation: deterministic and fast; at most 64).
    #[arg(long, default_value_t = 1, value_parser = bounds::beams())]
    beams: usize,
    /// Most new tokens per answer (1 to 4096).
    #[arg(long, default_value_t = 24, value_parser = bounds::positive(bounds::MAX_NEW_TOKENS))]
    max_new_tokens: usize,
    /// Copies of the variant answering batches side by side, each on its own thread: `auto` (one
    /// per core up to 16 for a decoder under 64 MiB of weights in a variant under 256 MiB, whose
    /// kernels are too small to share between threads; else one; one when `--threads` is given) or 1 to 64 (`eval`, `compare`;
    /// `bench` times one copy), with `--threads` per copy (default: the cores divided among them).
    /// The answers and files are those of one worker; memory grows with each copy.
    #[arg(long, default_value = "auto", value_parser = bounds::workers)]
    workers: bounds::Workers,
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
    /// Evaluate one shard: `I/N` (records whose position modulo N is I, 0-based), `auto` (a Slurm
    /// job array's task) or `auto/N` (a Kubernetes Indexed Job of N completions); merge with
    /// `lynx-zoo merge`.
    #[arg(long)]
    shard: Option<ShardSpec>,
    /// Also run the image-swap control (each picture replaced by another item's of the same class)
    /// into OUT/VARIANT/control-image-swap/.
    #[arg(long)]
    image_swap: bool,
    #[command(flatten)]
    zoo: ZooArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// Latency options.
#[derive(Debug, Args)]
pub struct LatencyArgs {
    /// Image items and video items (each) timed from the benchmark (1 to 1000).
    #[arg(long, default_value_t = 6, value_parser = bounds::positive(bounds::MAX_BENCH_ITEMS))]
    items: usize,
    /// Untimed passes first (0 to 100).
    #[arg(long, default_value_t = 1, value_parser = bounds::up_to(bounds::MAX_WARMUP))]
    warmup: usize,
    /// Timed passes (rounds over every variant and item; 1 to 1000).
    #[arg(long, default_value_t = 5, value_parser = bounds::positive(bounds::MAX_REPEATS))]
    repeats: usize,
    /// The larger batch size timed besides batch 1 (1 to 256).
    #[arg(long, default_value_t = 8, value_parser = bounds::positive(bounds::MAX_BATCH))]
    bench_batch: usize,
    /// Time one variant after another instead of interleaved (holds one variant in memory at a
    /// time; more exposed to load changes on the machine).
    #[arg(long)]
    no_interleave: bool,
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
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    zoo: ZooArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// Which tables to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableChoice {
    /// Overall accuracy, difference to the baseline (p, Holm p, BH q, claim), vision reliance, seeds.
    Accuracy,
    /// Accuracy per class, instruction following.
    PerClass,
    /// Latency per stage.
    Latency,
    /// Accuracy against cost and the Pareto front.
    Pareto,
    /// Every table (CSV: one file per table into `--output DIR`).
    All,
}

/// How tables are written.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format: terminal tables, Markdown, CSV (one table) or JSON (records).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Which table; default: all for `table`/`markdown`, `accuracy` for `csv`/`json`.
    #[arg(long, value_enum)]
    table: Option<TableChoice>,
    /// Write to this file instead of stdout (with `--format csv --table all`: a folder, one
    /// `TABLE.csv` per table).
    #[arg(long)]
    output: Option<PathBuf>,
}

impl OutputArgs {
    fn names(&self, default_machine: TableName, available: &[TableName]) -> Vec<TableName> {
        let one = |t: TableName| vec![t];
        match (self.table, self.format) {
            (Some(TableChoice::Accuracy), _) => one(TableName::Accuracy),
            (Some(TableChoice::PerClass), _) => one(TableName::PerClass),
            (Some(TableChoice::Latency), _) => one(TableName::Latency),
            (Some(TableChoice::Pareto), _) => one(TableName::Pareto),
            (Some(TableChoice::All), _) | (None, Format::Table | Format::Markdown) => available.to_vec(),
            (None, Format::Csv | Format::Json) => one(default_machine),
        }
    }

    /// Writes `tables` as asked: stdout, a file, or (CSV, several tables) a folder of files.
    fn write(&self, tables: &[Table]) -> anyhow::Result<()> {
        match (&self.output, self.format, tables.len()) {
            (Some(dir), Format::Csv, n) if n > 1 => {
                fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
                for t in tables {
                    let path = dir.join(format!("{}.csv", t.name.key()));
                    fs::write(&path, report::render(std::slice::from_ref(t), Format::Csv)?)
                        .with_context(|| format!("writing `{}`", path.display()))?;
                    println!("{}", path.display());
                }
                Ok(())
            }
            (Some(file), format, _) => {
                let text = report::render(tables, format)?;
                if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
                }
                fs::write(file, text + "\n").with_context(|| format!("writing `{}`", file.display()))?;
                println!("{}", file.display());
                Ok(())
            }
            (None, Format::Csv, n) if n > 1 => {
                bail!("CSV holds one table: choose one with `--table accuracy|per-class|latency|pareto`, or write every table with `--table all --output DIR`")
            }
            (None, format, _) => {
                println!("{}", report::render(tables, format)?);
                Ok(())
            }
        }
    }
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
    /// Skip the image-swap control (no vision-reliance column).
    #[arg(long)]
    no_image_swap: bool,
    #[command(flatten)]
    output: OutputArgs,
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
    /// Results folders of the same variants on other benchmark splits (e.g. a fresh seed): their
    /// differences to the baseline are set beside the main split's, and a finding must hold on all.
    #[arg(long)]
    also: Vec<PathBuf>,
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
    /// Accept latency measured in different runs, marking each row with its run (default: refuse,
    /// since latency from different runs cannot be compared).
    #[arg(long)]
    mixed_runs: bool,
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
    results: ResultsDir,
    /// Vision features of shared frozen encoders, computed once per item; None where no picture
    /// of this call is encoded twice ([`features_repeat`]).
    features: Option<FeatureCache>,
    stale: StaleResults,
}

impl<'a> EvalRun<'a> {
    fn new(
        zoo: &'a Zoo,
        bench: &'a Benchmark,
        set: &'a EvalSetArgs,
        runtime: &'a RuntimeArgs,
        stale: StaleResults,
        share_features: bool,
    ) -> Self {
        let results = ResultsDir::new(&set.out);
        let features = share_features.then(FeatureCache::new);
        EvalRun { zoo, bench, set, runtime, results, features, stale }
    }

    /// Evaluates one variant (resuming), returning its sorted predictions of `shard`.
    fn variant(&self, name: &str, shard: Shard, control: Control) -> anyhow::Result<Vec<eval::Prediction>> {
        let options = EvalOptions {
            limit: self.set.limit,
            shard,
            batch: self.set.batch,
            generation: self.set.generation()?,
            stale: self.stale,
            control,
        };
        let manifest = self.zoo.manifest(name)?;
        let files = self.zoo.read_verified(&manifest).with_context(|| format!("loading variant `{name}`"))?;
        let workers = match self.set.workers {
            bounds::Workers::Count(n) => n,
            bounds::Workers::Auto if self.runtime.threads_given() => 1,
            bounds::Workers::Auto => {
                let runtime = self.runtime.options()?;
                let decoder = model::decoder_weight_bytes(&manifest, &files)?;
                eval::auto_workers(decoder, files.bytes(), runtime.intra_threads(), runtime.ep())
            }
        };
        // No more copies than windows of work (a short run).
        let workers = workers.min(eval::windows(self.bench, &options)).max(1);
        let runtime = self.runtime.options_per_worker(workers)?;
        tracing::info!(variant = name, workers, threads = runtime.intra_threads(), "loading the workers");
        let mut models = Model::copies(manifest, &files, &runtime, workers)
            .with_context(|| format!("loading variant `{name}`"))?
            .into_iter()
            // Accuracy only: shared frozen encoders run once per item across the runs of this call.
            .map(|m| match &self.features {
                Some(cache) => m.with_feature_cache(cache.clone()),
                None => m,
            })
            .collect::<Vec<_>>();
        let manifest_path = models[0].manifest().file.clone();
        let label = match control {
            Control::None => name.to_string(),
            Control::ImageSwap => format!("{name} (image swap)"),
        };
        let mut progress = Progress::new(&label);
        let mut tick = |done: usize, total: usize| progress.update(done, total);
        let dir = self.results.run_dir(name, control);
        let (path, preds) = eval::evaluate(&mut models, &manifest_path, self.bench, &dir, &options, &mut tick)?;
        progress.finish();
        tracing::info!(variant = name, file = %path.display(), "predictions written");
        Ok(preds)
    }
}

/// What decides whether a variant's vision features can be shared: what it sees, and the sha256 of
/// its vision graph (None without one).
type Encoder = (VisionInput, Option<String>);

/// Whether a vision-feature cache can hit in one call over variants with these encoders: one
/// vision graph encodes the same pictures twice (two variants sharing it, or a variant and its
/// image-swap control), or a blind control's blank picture repeats on every item. Otherwise each
/// key would hash the pixels for nothing.
fn features_repeat(encoders: &[Encoder], image_swap: bool) -> bool {
    let mut runs: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (input, sha) in encoders {
        if *input == VisionInput::Blank {
            return true;
        }
        if let Some(sha) = sha {
            *runs.entry(sha).or_default() += 1 + usize::from(image_swap && input.sees());
        }
    }
    runs.values().any(|&n| n > 1)
}

/// The [`Encoder`] of each named variant.
fn encoders(zoo: &Zoo, names: &[String]) -> anyhow::Result<Vec<Encoder>> {
    names
        .iter()
        .map(|n| {
            let m = zoo.manifest(n)?;
            Ok((m.axes.vision_input, m.graphs.vision.as_ref().map(|g| g.file.sha256.clone())))
        })
        .collect()
}

/// `lynx-zoo eval`.
pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let zoo = args.zoo.open()?;
    let bench = load_bench(&args.set.bench)?;
    let shard = match &args.shard {
        Some(spec) => spec.resolve_from_env()?,
        None => Shard::ALL,
    };
    let share = features_repeat(&encoders(&zoo, &args.variants)?, args.image_swap);
    let run = EvalRun::new(&zoo, &bench, &args.set, &args.runtime, StaleResults::Refuse, share);
    for name in &args.variants {
        // A blind control (`vision_input: blank` or `none`) has no picture to swap.
        let sees = zoo.manifest(name)?.axes.vision_input.sees();
        let mut controls = vec![Control::None];
        if args.image_swap && sees {
            controls.push(Control::ImageSwap);
        }
        for control in controls {
            let preds = run.variant(name, shard, control)?;
            let a = eval::summarize(&preds).accuracy.overall;
            let file = run.results.run_dir(name, control).join(results::predictions_file(shard));
            println!(
                "{name}{}: accuracy {:.1}% [{:.1}, {:.1}] on {} items{} -> {}",
                if control == Control::ImageSwap { " (image swap)" } else { "" },
                a.accuracy * 100.0,
                a.ci_low * 100.0,
                a.ci_high * 100.0,
                a.n,
                if shard == Shard::ALL { String::new() } else { format!(" (shard {shard})") },
                file.display()
            );
        }
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
        interleave: !l.no_interleave,
    })
}

/// Times `names` together (interleaved) and writes each `latency.json`.
fn measure(
    zoo: &Zoo,
    names: &[String],
    bench: &Benchmark,
    opts: &BenchOptions,
    runtime: &RuntimeArgs,
    results: &ResultsDir,
) -> anyhow::Result<Vec<LatencyReport>> {
    let rt = runtime.options()?;
    let items = bench::pick_items(bench, opts.items_per_modality);
    eprintln!(
        "timing {} variant(s) on {} items, {} round(s){} ...",
        names.len(),
        items.len(),
        opts.repeats.max(1),
        if opts.interleave && names.len() > 1 { ", interleaved" } else { "" }
    );
    let mut load = |name: &str| zoo.load(name, &rt);
    let reports = bench::measure_variants(names, &mut load, &items, &rt, opts, &bench::new_run_id())
        .context("timing the variants")?;
    for r in &reports {
        results.write_latency(r)?;
    }
    Ok(reports)
}

/// What a manifest says about a result: changes, paper (and its finding), where an imported variant comes from, what
/// it sees (`vision_input`), seed, seed_of.
fn described(zoo: Option<&Zoo>, name: &str, predictions: Vec<eval::Prediction>) -> VariantResult {
    let mut r = VariantResult::scored(name, predictions);
    if let Some(m) = zoo.and_then(|z| z.manifest(name).ok()) {
        r.changes = m.changes.clone();
        r.paper = m.paper.clone();
        r.paper_finding = m.paper_finding;
        if let Origin::Imported(i) = &m.origin {
            r.imported = Some(Imported { source: i.source.clone(), revision: i.revision.clone() });
        }
        r.vision_input = m.axes.vision_input;
        r.seed = m.seed;
        r.seed_of = m.seed_of.clone();
    }
    r
}

/// `lynx-zoo bench`.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let zoo = args.zoo.open()?;
    for name in &args.variants {
        zoo.manifest(name)?;
    }
    if matches!(args.set.workers, bounds::Workers::Count(n) if n > 1) {
        bail!(
            "`bench` times one copy of each variant; `--workers` is for the accuracy runs of `eval` and `compare` (docs/cli.md, \"Workers\")"
        );
    }
    let bench = load_bench(&args.set.bench)?;
    let opts = bench_options(&args.latency, &args.set)?;
    let results = ResultsDir::new(&args.set.out);
    let reports = measure(&zoo, &args.variants, &bench, &opts, &args.runtime, &results)?;
    let rows: Vec<VariantResult> = reports
        .into_iter()
        .map(|l| VariantResult { latency: Some(l.clone()), ..described(Some(&zoo), &l.variant, Vec::new()) })
        .collect();
    let baseline = rows[0].name.clone();
    let c = Comparison::new(rows, &baseline, None)?;
    if matches!(args.output.table, Some(t) if !matches!(t, TableChoice::Latency | TableChoice::All)) {
        bail!("`bench` measures latency only (`--table latency`); accuracy and the Pareto front come from `lynx-zoo compare`");
    }
    let names = args.output.names(TableName::Latency, &[TableName::Latency]);
    args.output.write(&c.tables(&names)?)
}

fn pick_baseline(names: &[String], asked: Option<&str>) -> anyhow::Result<String> {
    match asked {
        Some(b) if names.iter().any(|n| n == b) => Ok(b.to_string()),
        Some(b) => bail!("baseline `{b}` is not among the compared variants ({})", names.join(", ")),
        None if names.iter().any(|n| n == "lynx") => Ok("lynx".into()),
        None => names.first().cloned().context("no variants to compare"),
    }
}

/// The majority floor of `bench`, scored on its first `limit` records.
fn floor_of(bench: &Benchmark, limit: Option<usize>) -> anyhow::Result<Floor> {
    let floor = MajorityFloor::for_benchmark(bench)
        .with_context(|| format!("computing the majority floor of `{}`", bench.path.display()))?;
    Ok(Floor { description: floor.describe(), predictions: floor.predictions(bench, limit) })
}

/// `lynx-zoo compare`.
pub fn compare(args: CompareArgs) -> anyhow::Result<()> {
    let zoo = args.zoo.open()?;
    let names: Vec<String> = if args.variants.is_empty() { zoo.variants().to_vec() } else { args.variants.clone() };
    if names.is_empty() {
        bail!("the zoo `{}` has no variants", zoo.root().display());
    }
    for name in &names {
        zoo.manifest(name)?;
    }
    let baseline = pick_baseline(&names, args.baseline.as_deref())?;
    let bench = load_bench(&args.set.bench)?;
    let opts = bench_options(&args.latency, &args.set)?;
    let share = features_repeat(&encoders(&zoo, &names)?, !args.no_image_swap);
    let run = EvalRun::new(&zoo, &bench, &args.set, &args.runtime, StaleResults::Replace, share);
    let mut results = Vec::new();
    for name in &names {
        let mut r = described(Some(&zoo), name, run.variant(name, Shard::ALL, Control::None)?);
        if r.sees() && !args.no_image_swap {
            r.swapped = Some(run.variant(name, Shard::ALL, Control::ImageSwap)?);
        }
        results.push(r);
    }
    if let Some(features) = &run.features {
        let (hits, misses) = features.stats();
        tracing::info!(hits, misses, "vision features shared across variants");
    }
    drop(run);
    if !args.no_latency {
        let reports = measure(&zoo, &names, &bench, &opts, &args.runtime, &ResultsDir::new(&args.set.out))?;
        for (r, l) in results.iter_mut().zip(reports) {
            r.latency = Some(l);
        }
    }
    let c = Comparison::new(results, &baseline, Some(floor_of(&bench, args.set.limit)?))?;
    let whole_zoo = names.len() == zoo.variants().len() && args.set.limit.is_none();
    let summary = ResultsDir::new(&args.set.out).comparison_file(&names, whole_zoo);
    if let Some(dir) = summary.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating `{}`", dir.display()))?;
    }
    fs::write(&summary, serde_json::to_string_pretty(&c)? + "\n")
        .with_context(|| format!("writing `{}`", summary.display()))?;
    eprintln!("comparison kept in {}", summary.display());
    let available: Vec<TableName> = DEFAULT_TABLES
        .into_iter()
        .filter(|t| !(args.no_latency && matches!(t, TableName::Latency | TableName::Pareto)))
        .collect();
    args.output.write(&c.tables(&args.output.names(TableName::Accuracy, &available))?)
}

/// Every variant of a results folder ([`ResultsDir::load`]) with what the zoo's manifests say of
/// each: the benchmark, its limit and the rows.
fn load_results(
    results: &ResultsDir,
    zoo: Option<&Zoo>,
) -> anyhow::Result<(Benchmark, Option<usize>, Vec<VariantResult>)> {
    let runs = results.load()?;
    let rows = runs
        .variants
        .into_iter()
        .map(|v| VariantResult { swapped: v.swapped, latency: v.latency, ..described(zoo, &v.name, v.predictions) })
        .collect();
    Ok((runs.bench, runs.limit, rows))
}

/// `lynx-zoo report`.
pub fn report(args: ReportArgs, zoo: &ZooArgs) -> anyhow::Result<()> {
    let zoo = zoo.open().ok();
    let main = ResultsDir::new(&args.results);
    let (bench, limit, results) = load_results(&main, zoo.as_ref())?;
    let names: Vec<String> = results.iter().map(|r| r.name.clone()).collect();
    let baseline = pick_baseline(&names, args.baseline.as_deref())?;
    let c = Comparison::new(results, &baseline, Some(floor_of(&bench, limit)?))?;
    let runs = c.latency_runs();
    if runs.len() > 1 && !args.mixed_runs {
        let by_run: Vec<String> = runs
            .iter()
            .map(|run| {
                let members: Vec<&str> = c
                    .rows
                    .iter()
                    .filter(|r| r.latency.as_ref().is_some_and(|l| &l.run_id == run))
                    .map(|r| r.name.as_str())
                    .collect();
                format!("{run}: {}", members.join(", "))
            })
            .collect();
        bail!(
            "the latency in `{}` comes from {} measurement runs ({}); latency from different runs cannot be compared: rerun `lynx-zoo compare` (or `bench` over every variant at once), or pass --mixed-runs to mark each row with its run",
            args.results.display(),
            runs.len(),
            by_run.join("; ")
        );
    }
    let mut splits: Vec<(String, Comparison)> = Vec::new();
    for dir in &args.also {
        let (b, l, r) = load_results(&ResultsDir::new(dir), zoo.as_ref())?;
        let label = b.path.parent().map_or_else(|| dir.display().to_string(), |p| p.display().to_string());
        splits.push((label, Comparison::new(r, &baseline, Some(floor_of(&b, l)?))?));
    }
    let has_latency = c.rows.iter().any(|r| r.latency.is_some());
    if has_latency {
        report::plot::accuracy_vs_latency(&c, &args.plot)?;
    }
    let body = markdown::section(&markdown::Section {
        results: &args.results,
        bench: &bench.path,
        limit,
        comparison: &c,
        splits: &splits,
        plot: has_latency.then(|| markdown::relative_link(&args.out, &args.plot)),
    })?;
    results::splice::write_spliced(&args.out, &body)?;
    println!("{}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_cache_only_where_a_picture_can_be_encoded_twice() {
        use VisionInput::{Blank, None, Picture};
        let with = |input: VisionInput, sha: &str| (input, Some(sha.to_string()));
        let (a, b) = (with(Picture, "a"), with(Picture, "b"));
        // one variant that sees, alone: every picture encoded once
        assert!(!features_repeat(std::slice::from_ref(&a), false));
        assert!(!features_repeat(&[(None, Option::None)], true), "no vision graph, nothing to swap");
        // its image-swap control, a second variant on the same encoder, a blank picture per item
        assert!(features_repeat(std::slice::from_ref(&a), true));
        assert!(features_repeat(&[a.clone(), with(Picture, "a")], false));
        assert!(features_repeat(&[with(Blank, "a")], false));
        // other encoders, or a text-only variant, share nothing
        assert!(!features_repeat(&[a, b, (None, Option::None)], false));
    }
}
