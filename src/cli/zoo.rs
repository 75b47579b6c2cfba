//! `lynx-zoo list | show | check | ask`: the zoo and its variants. See docs/cli.md.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use prettytable::{format, row, Table};

use lynx_zoo::manifest::raw::RawOrigin;
use lynx_zoo::manifest::{Adapter, Backbone, Connector, Manifest, Origin, VisionInput};
use lynx_zoo::runtime::{self, ExecutionProvider, RuntimeOptions, Spinning};
use lynx_zoo::{Media, Zoo};

/// Where the zoo is.
#[derive(Debug, Args)]
pub struct ZooArgs {
    /// The zoo folder (holding `variants/` and `onnx/`).
    #[arg(long, env = "LYNX_ZOO_DIR", default_value = ".")]
    zoo: PathBuf,
}

/// How sessions run.
#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Execution provider: `cpu`, or `cuda` / `cuda:N` (needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    ep: String,
    /// Intra-op threads per session (default: the number of cores; at most 256).
    #[arg(long, value_parser = super::bounds::threads())]
    threads: Option<usize>,
    /// Whether idle intra-op threads spin between operators (`on`, ONNX Runtime's default) or
    /// sleep (`off`); `auto` spins for a decoder of 64 MiB of weights or more, where it is faster,
    /// and sleeps for smaller ones, where it is (docs/performance.md). `--spin` alone is `on`.
    #[arg(long, value_enum, default_value_t = SpinArg::Auto, num_args = 0..=1, default_missing_value = "on")]
    spin: SpinArg,
}

/// `--spin` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpinArg {
    /// By the decoder's size.
    Auto,
    /// Always spin.
    On,
    /// Always sleep.
    Off,
}

impl From<SpinArg> for Spinning {
    fn from(s: SpinArg) -> Spinning {
        match s {
            SpinArg::Auto => Spinning::Auto,
            SpinArg::On => Spinning::On,
            SpinArg::Off => Spinning::Off,
        }
    }
}

impl ZooArgs {
    /// Opens the zoo folder.
    pub(crate) fn open(&self) -> anyhow::Result<Zoo> {
        open(self)
    }
}

impl RuntimeArgs {
    pub(crate) fn options(&self) -> anyhow::Result<RuntimeOptions> {
        let ep: ExecutionProvider = self.ep.parse()?;
        let mut opts = RuntimeOptions::new().with_ep(ep)?;
        if let Some(t) = self.threads {
            opts = opts.with_intra_threads(t)?;
        }
        Ok(opts.with_spinning(self.spin.into()))
    }

    /// Whether `--threads` was given.
    pub(crate) fn threads_given(&self) -> bool {
        self.threads.is_some()
    }

    /// [`RuntimeArgs::options`] for one of `workers` copies of a model run side by side: without
    /// `--threads`, the cores divided among them (at least one thread each).
    pub(crate) fn options_per_worker(&self, workers: usize) -> anyhow::Result<RuntimeOptions> {
        let opts = self.options()?;
        Ok(match self.threads {
            Some(_) => opts,
            None => {
                let threads = (opts.intra_threads() / workers.max(1)).max(1);
                opts.with_intra_threads(threads)?
            }
        })
    }
}

/// Output formats of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// A terminal table.
    Table,
    /// A JSON array of objects (name, description, changes, axes, parameters).
    Json,
}

/// Output formats of `show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    /// A readable summary.
    Text,
    /// The manifest as YAML.
    Yaml,
    /// The manifest as JSON.
    Json,
}

/// Output formats of `ask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AskFormat {
    /// The answer text alone.
    Text,
    /// A JSON object: answer, tokens, provider, spinning, timings.
    Json,
}

/// Flags of `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    zoo: ZooArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Table)]
    format: ListFormat,
}

/// Flags of `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The variant.
    variant: String,
    #[command(flatten)]
    zoo: ZooArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    format: ShowFormat,
}

/// Flags of `check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Variants to check (default: all).
    variants: Vec<String>,
    #[command(flatten)]
    zoo: ZooArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
}

/// Flags of `ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The variant.
    variant: String,
    /// An image file (PNG, JPEG, GIF, WebP).
    #[arg(long, conflicts_with = "video")]
    image: Option<PathBuf>,
    /// A video: a folder of frame images or an animated GIF.
    #[arg(long)]
    video: Option<PathBuf>,
    /// The question.
    #[arg(long)]
    question: String,
    #[command(flatten)]
    zoo: ZooArgs,
    #[command(flatten)]
    runtime: RuntimeArgs,
    /// Beam search with N beams (1: greedy; at most 64). Default: the variant's manifest.
    #[arg(long, value_parser = super::bounds::beams())]
    beams: Option<usize>,
    /// Greedy decoding.
    #[arg(long, conflicts_with_all = ["beams", "temperature", "top_k", "top_p"])]
    greedy: bool,
    /// Most new tokens. Default: the variant's manifest.
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Fewest new tokens before the answer may end.
    #[arg(long)]
    min_new_tokens: Option<usize>,
    /// Sample at this temperature (switches to sampling).
    #[arg(long)]
    temperature: Option<f32>,
    /// Sample from the K best tokens (switches to sampling).
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling mass in (0, 1] (switches to sampling).
    #[arg(long)]
    top_p: Option<f32>,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AskFormat::Text)]
    format: AskFormat,
    /// Print stage timings and the provider to stderr.
    #[arg(long)]
    timings: bool,
}

fn open(args: &ZooArgs) -> anyhow::Result<Zoo> {
    Zoo::open(&args.zoo).with_context(|| format!("cannot open the zoo `{}` (set --zoo)", args.zoo.display()))
}

fn connector(m: &Manifest) -> String {
    match &m.axes.connector {
        Connector::CrossAttention { kind, every, .. } => format!("{}/{every}", yaml_value(kind)),
        other => yaml_value(&other.kind()),
    }
}

/// What `list` prints for an axis the manifest does not record (an imported model's recipe).
const NOT_RECORDED: &str = "-";

/// `family-flavour-size`, the flavour left out when not recorded (`qwen2-0.5b`).
fn backbone(b: &Backbone) -> String {
    let mut parts = vec![b.family.to_string()];
    parts.extend(b.flavour.map(|f| yaml_value(&f)));
    parts.push(b.size.to_string());
    parts.join("-")
}

fn yaml_value<T: serde::Serialize>(value: &T) -> String {
    lynx_zoo::manifest::yaml::scalar(value)
}

/// `lynx-zoo list`.
pub fn list(args: ListArgs) -> anyhow::Result<()> {
    let zoo = open(&args.zoo)?;
    let mut manifests = Vec::new();
    let mut broken = 0;
    for name in zoo.variants() {
        match zoo.manifest(name) {
            Ok(m) => manifests.push(m),
            Err(e) => {
                broken += 1;
                eprintln!("error: {e}");
            }
        }
    }
    match args.format {
        ListFormat::Json => {
            let mut list = Vec::new();
            for m in &manifests {
                // Axes and parameters as the file writes them.
                let raw = lynx_zoo::manifest::read_raw(&m.file)?;
                list.push(serde_json::json!({
                    "name": m.name,
                    "description": m.description,
                    "changes": m.changes,
                    "paper": m.paper,
                    "origin": raw.origin.clone().unwrap_or(RawOrigin::ZOO),
                    "axes": raw.axes,
                    "parameters": raw.parameters,
                }));
            }
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        ListFormat::Table => {
            let mut table = Table::new();
            table.set_format(*format::consts::FORMAT_CLEAN);
            table.set_titles(row![b => "name", "connector", "backbone", "adapter", "freeze", "res", "tokens", "frames", "vision", "params", "changes"]);
            for m in &manifests {
                let a = &m.axes;
                table.add_row(row![
                    m.name,
                    connector(m),
                    backbone(&a.backbone),
                    match a.adapter {
                        Some(Adapter { kind, every: Some(k), .. }) => format!("{}/{k}", yaml_value(&kind)),
                        Some(Adapter { kind, .. }) => yaml_value(&kind),
                        None => NOT_RECORDED.into(),
                    },
                    a.freeze.map_or(NOT_RECORDED.into(), |f| format!(
                        "{}/{}",
                        yaml_value(&f.vision),
                        yaml_value(&f.llm)
                    )),
                    if a.vision_input.has_vision() { a.resolution.to_string() } else { "-".into() },
                    a.visual_tokens.map_or("-".into(), |t| t.to_string()),
                    if a.vision_input.has_vision() { a.frames.to_string() } else { "-".into() },
                    a.vision_input,
                    format!("{:.2}M", m.parameters.total as f64 / 1e6),
                    m.changes.clone().unwrap_or_else(|| match m.origin {
                        Origin::Zoo => "(baseline)".into(),
                        Origin::Imported(_) => "(imported)".into(),
                    })
                ]);
            }
            if manifests.is_empty() {
                eprintln!("the zoo `{}` has no variants (variants/*.yaml)", zoo.root().display());
            } else {
                table.printstd();
            }
        }
    }
    if broken > 0 {
        bail!("{broken} manifest(s) are invalid (see above); `lynx-zoo check` tells more");
    }
    Ok(())
}

/// `lynx-zoo show VARIANT`.
pub fn show(args: ShowArgs) -> anyhow::Result<()> {
    let zoo = open(&args.zoo)?;
    let m = zoo.manifest(&args.variant)?;
    // The file as written, beside the validated form.
    let raw = lynx_zoo::manifest::read_raw(&m.file)?;
    match args.format {
        ShowFormat::Yaml => print!("{}", lynx_zoo::manifest::yaml::to_string(&raw)?),
        ShowFormat::Json => println!("{}", serde_json::to_string_pretty(&raw)?),
        ShowFormat::Text => {
            println!("{} -- {}", m.name, m.description);
            if let Some(c) = &m.changes {
                println!("changes: {c}");
            }
            if let Some(p) = &m.paper {
                let found = m.paper_finding.map_or_else(String::new, |f| format!(" [found: {}]", f.as_str()));
                println!("paper:   {p}{found}");
            }
            if let Origin::Imported(i) = &m.origin {
                println!(
                    "origin:  imported from {} (revision {}; config sha256 {})",
                    i.source,
                    i.revision.as_deref().unwrap_or("not recorded"),
                    i.config_sha256
                );
            }
            println!("\naxes:\n{}", indent(&yaml_value(&raw.axes)));
            let a = &m.axes;
            let absent: Vec<&str> = [
                ("backbone.flavour", a.backbone.flavour.is_none()),
                ("adapter", a.adapter.is_none()),
                ("freeze", a.freeze.is_none()),
                ("data", a.data.is_none()),
                ("prompts", a.prompts.is_none()),
                ("quantization", a.quantization.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, absent)| absent.then_some(name))
            .collect();
            if !absent.is_empty() {
                println!("  (not recorded: {})", absent.join(", "));
            }
            let d = &m.model;
            println!(
                "\nmodel: hidden {}, layers {}, heads {} (kv {}), head_dim {}, vocab {}, context {}",
                d.hidden, d.layers, d.heads, d.kv_heads, d.head_dim, d.vocab_size, d.max_positions
            );
            println!("parameters: {} total, {} trainable", m.parameters.total, m.parameters.trainable);
            println!("\ngraphs:");
            for g in m.graphs.iter() {
                let size: u64 = g.files().filter_map(|f| std::fs::metadata(&f.path).ok()).map(|x| x.len()).sum();
                println!("  {:<9} {} ({:.1} MB)", g.role.as_str(), g.file.rel, size as f64 / 1e6);
                for t in &g.inputs {
                    println!("      in   {t}");
                }
                for t in &g.outputs {
                    println!("      out  {t}");
                }
            }
            println!("\nprompt: {:?}", m.prompt.template);
            println!("generation: {}", serde_json::to_string(&raw.generation)?);
            println!("provenance:\n{}", indent(&yaml_value(&raw.provenance)));
        }
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}

/// `lynx-zoo check [VARIANT...]`.
pub fn check(args: CheckArgs) -> anyhow::Result<()> {
    let zoo = open(&args.zoo)?;
    let opts = args.runtime.options()?;
    let names: Vec<String> = if args.variants.is_empty() { zoo.variants().to_vec() } else { args.variants.clone() };
    if names.is_empty() {
        eprintln!("the zoo `{}` has no variants (variants/*.yaml); nothing to check", zoo.root().display());
        return Ok(());
    }
    eprintln!("checking {} variant(s) with {}", names.len(), runtime::describe()?);
    let mut failed = 0;
    for name in &names {
        match zoo.check(name, &opts) {
            Ok(r) => println!(
                "ok    {:<28} {} files ({:.1} MB) verified; graphs {} match; vocab {}",
                r.name,
                r.files,
                r.bytes as f64 / 1e6,
                r.graphs.join(", "),
                r.vocab
            ),
            Err(e) => {
                failed += 1;
                println!("FAIL  {name:<28} {e}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} variant(s) failed the check", names.len());
    }
    Ok(())
}

/// `lynx-zoo ask VARIANT ...`.
pub fn ask(args: AskArgs) -> anyhow::Result<()> {
    let zoo = open(&args.zoo)?;
    let opts = args.runtime.options()?;
    let mut model = zoo.load(&args.variant, &opts).with_context(|| format!("cannot load `{}`", args.variant))?;
    let vision_input = model.manifest().axes.vision_input;
    let media = match (&args.image, &args.video) {
        _ if !vision_input.has_vision() => Media::None,
        (Some(p), _) => Media::image(p),
        (None, Some(p)) => Media::video(p),
        (None, None) if vision_input == VisionInput::Blank => bail!(
            "`{}` is a blank-picture control: it sees a blank picture in place of the image or video, but needs one to \
             replace: pass --image PATH or --video PATH",
            args.variant
        ),
        (None, None) => bail!("`{}` looks at an image or a video: pass --image PATH or --video PATH", args.variant),
    };
    if vision_input == VisionInput::Blank {
        eprintln!("note: `{}` sees a blank picture in place of every image and video frame", args.variant);
    }

    let mut gen = model.default_generation().with_seed(args.seed);
    if args.greedy {
        gen = gen.with_greedy();
    }
    if let Some(n) = args.max_new_tokens {
        gen = gen.with_max_new_tokens(n)?;
    }
    if let Some(n) = args.min_new_tokens {
        gen = gen.with_min_new_tokens(n)?;
    }
    if let Some(b) = args.beams {
        gen = gen.with_beams(b)?;
    }
    if let Some(t) = args.temperature {
        gen = gen.with_temperature(t)?;
    }
    if let Some(k) = args.top_k {
        gen = gen.with_top_k(k);
    }
    if let Some(p) = args.top_p {
        gen = gen.with_top_p(p)?;
    }

    let answer = model.ask(&media, &args.question, &gen)?;
    let t = answer.timings;
    match args.format {
        AskFormat::Text => println!("{}", answer.text),
        AskFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "variant": model.name(),
                "question": args.question,
                "answer": answer.text,
                "tokens": answer.tokens,
                "finished": answer.finished,
                "provider": answer.provider.to_string(),
                "spinning": model.spinning().to_string(),
                "strategy": yaml_value(&gen.strategy),
                "timings_ms": {
                    "preprocess": ms(t.preprocess), "vision": ms(t.vision), "connector": ms(t.connector),
                    "tokenize": ms(t.tokenize), "prefill": ms(t.prefill), "decode": ms(t.decode),
                    "decode_steps": t.decode_steps, "select": ms(t.select), "detokenize": ms(t.detokenize),
                    "unaccounted": ms(t.unaccounted()), "onnx_runtime": ms(t.onnx_runtime),
                    "outside_onnx_runtime": ms(t.outside_onnx_runtime()), "total": ms(t.total),
                },
            }))?
        ),
    }
    if args.timings {
        eprintln!(
            "{} on {} (spinning {}): preprocess {:.1} ms, vision {:.1} ms, connector {:.1} ms, tokenize {:.2} ms, \
             prefill {:.1} ms, decode {:.1} ms ({} steps), select {:.2} ms, detokenize {:.2} ms, \
             unaccounted {:.2} ms, total {:.1} ms (inside ONNX Runtime {:.1} ms, outside {:.2} ms)",
            model.name(),
            answer.provider,
            model.spinning(),
            ms(t.preprocess),
            ms(t.vision),
            ms(t.connector),
            ms(t.tokenize),
            ms(t.prefill),
            ms(t.decode),
            t.decode_steps,
            ms(t.select),
            ms(t.detokenize),
            ms(t.unaccounted()),
            ms(t.total),
            ms(t.onnx_runtime),
            ms(t.outside_onnx_runtime())
        );
    }
    Ok(())
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
