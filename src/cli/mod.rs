//! Command-line definitions: one subcommand per verb, flags defined once with their help.
//!
//! Results go to stdout, diagnostics and progress to stderr. Exit codes: 0 success, 1 error
//! (message on stderr), 2 usage error (from clap).

use clap::{Parser, Subcommand};

mod bounds;
mod compare;
mod data;
mod import;
mod merge;
mod progress;
mod zoo;

/// Compare GPT-4-style multimodal LLM variants (Lynx, arXiv 2307.02469) through ONNX Runtime.
#[derive(Debug, Parser)]
#[command(name = "lynx-zoo", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate, load and inspect benchmark data.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// List the zoo's variants and their axes.
    List(zoo::ListArgs),
    /// Show one variant's manifest: axes, graphs and their tensors, provenance.
    Show(zoo::ShowArgs),
    /// Verify variants: schema, paths, checksums, tokenizer, graph inputs and outputs.
    Check(zoo::CheckArgs),
    /// Answer a question about an image or a video with one variant.
    Ask(zoo::AskArgs),
    /// Evaluate variants on a benchmark; resumable, shardable, predictions written as they come.
    Eval(compare::EvalArgs),
    /// Merge the shard files of `eval --shard I/N` into one predictions file.
    Merge(merge::MergeArgs),
    /// Time variants stage by stage (preprocess, vision, connector, prefill, decode) at two batch sizes.
    Bench(compare::BenchArgs),
    /// Compare variants: accuracy, latency, and accuracy against cost with the Pareto front.
    Compare(compare::CompareArgs),
    /// Make an onnxruntime-genai folder or an Optimum export a variant of the zoo (docs/import.md).
    Import(import::ImportArgs),
    /// Write docs/results.md (tables and plot) from a results folder.
    Report {
        #[command(flatten)]
        args: compare::ReportArgs,
        #[command(flatten)]
        zoo: zoo::ZooArgs,
    },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Data(cmd) => data::run(cmd),
        Command::List(args) => zoo::list(args),
        Command::Show(args) => zoo::show(args),
        Command::Check(args) => zoo::check(args),
        Command::Ask(args) => zoo::ask(args),
        Command::Eval(args) => compare::eval(args),
        Command::Merge(args) => merge::merge(args),
        Command::Bench(args) => compare::bench(args),
        Command::Compare(args) => compare::compare(args),
        Command::Import(args) => import::import(args),
        Command::Report { args, zoo } => compare::report(args, &zoo),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// The `## lynx-zoo NAME ...` section of docs/cli.md (to the next `## `).
    fn section<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
        let start = doc.find(&format!("\n## `lynx-zoo {name}"))? + 1;
        let end = doc[start + 3..].find("\n## ").map_or(doc.len(), |k| start + 3 + k);
        Some(&doc[start..end])
    }

    #[test]
    fn docs_cli_md_covers_every_subcommand_and_flag() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md")).unwrap();
        // Flags the preamble documents (`--zoo`, `--ep`, `--threads`, the bounds table) hold for
        // every command.
        let preamble = &doc[..doc.find("\n## ").unwrap_or(0)];
        let cli = super::Cli::command();
        let mut missing = Vec::new();
        for sub in cli.get_subcommands() {
            let name = sub.get_name();
            let Some(text) = section(&doc, name) else {
                missing.push(format!("no `## lynx-zoo {name}` section"));
                continue;
            };
            let nested: Vec<&clap::Command> = sub.get_subcommands().collect();
            let commands = if nested.is_empty() { vec![sub] } else { nested };
            for command in commands {
                for arg in command.get_arguments() {
                    if let Some(long) = arg.get_long() {
                        let flag = format!("--{long}");
                        if !text.contains(&flag) && !preamble.contains(&flag) && !["help", "version"].contains(&long) {
                            missing.push(format!("`{name} {}`: `--{long}`", command.get_name()));
                        }
                    }
                }
            }
        }
        assert!(missing.is_empty(), "docs/cli.md lacks:\n{}", missing.join("\n"));
    }

    /// Flags of other programs that the `lynx-zoo` sections quote: Slurm's (the `--shard auto`
    /// table), cargo's (`ask --ep cuda`) and optimum-cli's (`import optimum`).
    const OTHER_PROGRAMS_FLAGS: [&str; 3] = ["--array", "--features", "--task"];

    /// Every `--flag` in `text` (a flag starts after a character that is not part of a word).
    fn flags_in(text: &str) -> Vec<&str> {
        let mut out = Vec::new();
        for (at, _) in text.match_indices("--") {
            let before = text[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                continue;
            }
            let name = &text[at + 2..];
            let len = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).unwrap_or(name.len());
            let name = name[..len].trim_end_matches('-');
            if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                out.push(&text[at..at + 2 + name.len()]);
            }
        }
        out
    }

    #[test]
    fn docs_cli_md_documents_no_subcommand_or_flag_that_the_cli_lacks() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md")).unwrap();
        let cli = super::Cli::command();
        let mut known: Vec<String> = Vec::new();
        let mut stack = vec![&cli];
        while let Some(command) = stack.pop() {
            known.extend(command.get_arguments().filter_map(|a| a.get_long()).map(|l| format!("--{l}")));
            stack.extend(command.get_subcommands());
        }
        // The preamble and the `## lynx-zoo NAME` sections, not the Slurm, Kubernetes and CUDA
        // recipes that follow them.
        let preamble = &doc[..doc.find("\n## ").unwrap_or(0)];
        let mut parts = vec![("the preamble".to_string(), preamble)];
        let mut stale = Vec::new();
        for heading in doc.lines().filter_map(|l| l.strip_prefix("## `lynx-zoo ")) {
            let mut words = heading.split([' ', '`']);
            let name = words.next().unwrap_or_default();
            let Some(sub) = cli.find_subcommand(name) else {
                stale.push(format!("`## lynx-zoo {name}`: no such subcommand"));
                continue;
            };
            if sub.has_subcommands() {
                // `data generate|text` names required nested commands; `import [genai|optimum]` optional ones.
                for nested in words.next().unwrap_or_default().trim_matches(['[', ']']).split('|') {
                    if sub.find_subcommand(nested).is_none() {
                        stale.push(format!("`## lynx-zoo {name}`: no subcommand `{name} {nested}`"));
                    }
                }
            }
            parts.push((format!("`## lynx-zoo {name}`"), section(&doc, name).unwrap_or_default()));
        }
        for (part, text) in parts {
            for flag in flags_in(text) {
                if !known.iter().any(|k| k == flag) && !OTHER_PROGRAMS_FLAGS.contains(&flag) {
                    stale.push(format!("{part}: `{flag}`"));
                }
            }
        }
        stale.dedup();
        assert!(stale.is_empty(), "docs/cli.md documents what the command line does not have:\n{}", stale.join("\n"));
    }

    #[test]
    fn flags_in_finds_flags_not_dashes() {
        let text = "| --- | --- |\n`--zoo DIR`, `--shard=auto/4` and --ep; not a--b, ---x or --8";
        assert_eq!(flags_in(text), ["--zoo", "--shard", "--ep"]);
    }
}
