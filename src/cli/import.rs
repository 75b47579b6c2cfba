//! `lynx-zoo import`: an onnxruntime-genai folder or an Optimum export as a variant of the zoo.
//! See docs/import.md and docs/cli.md.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use lynx_zoo::import::{self, ImportOptions, Layout};

/// `lynx-zoo import DIR` (the layout detected) or `lynx-zoo import genai|optimum DIR`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ImportArgs {
    #[command(subcommand)]
    layout: Option<LayoutCommand>,
    #[command(flatten)]
    args: Option<FolderArgs>,
}

/// A layout named instead of detected.
#[derive(Debug, Subcommand)]
enum LayoutCommand {
    /// An onnxruntime-genai folder (`genai_config.json`, as its model builder writes).
    Genai(FolderArgs),
    /// An Optimum export (`config.json` and `model.onnx`, `--task text-generation-with-past`).
    Optimum(FolderArgs),
}

/// The folder and what to make of it.
#[derive(Debug, Args)]
pub struct FolderArgs {
    /// The folder to import.
    dir: PathBuf,
    /// The variant's name: `variants/NAME.yaml` and `onnx/NAME/` in the zoo.
    #[arg(long)]
    name: String,
    /// The zoo folder receiving `variants/` and `onnx/` (created when missing).
    #[arg(long, env = "LYNX_ZOO_DIR", default_value = ".")]
    zoo: PathBuf,
    /// The Hugging Face checkpoint a decoder without its embedding was built from
    /// (onnxruntime-genai's `exclude_embeds`): its token embedding becomes the `embed` graph.
    #[arg(long, value_name = "CHECKPOINT")]
    embeddings: Option<PathBuf>,
    /// The prompt template in place of the chat template (`{question}` exactly once).
    #[arg(long)]
    template: Option<String>,
    /// Default most new tokens (else the source's `max_new_tokens`, else 64; 1 to 4096).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_new_tokens: Option<u32>,
    /// `origin.source` (default: the folder's name).
    #[arg(long)]
    source: Option<String>,
    /// `origin.revision` (default: unknown).
    #[arg(long)]
    revision: Option<String>,
    /// Replace a variant of that name (the files this command writes, and the manifest).
    #[arg(long)]
    force: bool,
}

/// Runs `import`.
pub fn import(args: ImportArgs) -> anyhow::Result<()> {
    let (layout, a) = match (args.layout, args.args) {
        (Some(LayoutCommand::Genai(a)), _) => (Some(Layout::Genai), a),
        (Some(LayoutCommand::Optimum(a)), _) => (Some(Layout::Optimum), a),
        (None, Some(a)) => (None, a),
        (None, None) => anyhow::bail!("name the folder to import: `lynx-zoo import DIR --name NAME`"),
    };
    let opts = ImportOptions {
        name: a.name,
        zoo: a.zoo,
        layout,
        embeddings: a.embeddings,
        template: a.template,
        max_new_tokens: a.max_new_tokens,
        source: a.source,
        revision: a.revision,
        force: a.force,
    };
    let done = import::import(&a.dir, &opts, &mut |line| eprintln!("{line}"))?;
    for note in &done.notes {
        eprintln!("  note: {note}");
    }
    println!("{}", done.manifest.display());
    eprintln!(
        "imported `{}` ({} layout); try `lynx-zoo ask {} --zoo {} --question ...`",
        opts.name,
        done.layout.as_str(),
        opts.name,
        opts.zoo.display()
    );
    Ok(())
}
