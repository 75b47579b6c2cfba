//! The `lynx-zoo` command line. See docs/cli.md.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    restore_sigpipe();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LYNX_ZOO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", message(&err));
            ExitCode::from(1)
        }
    }
}

/// Lets a closed stdout pipe end the process quietly, as it does `cat` or `grep`.
///
/// Rust ignores SIGPIPE before `main`, so writing to a pipe whose reader has gone
/// (`lynx-zoo list | head -1`) fails with `EPIPE` and `println!` panics ("failed printing to
/// stdout: Broken pipe"). With the default disposition restored the kernel ends the process
/// instead, without a message (the shell reports status 141 = 128 + SIGPIPE), which is what a
/// Unix filter does.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; `signal` with
    // `SIG_DFL` installs no handler, so no Rust code runs in signal context.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The error and its causes joined by `: `, skipping a cause that its parent's message already
/// contains (our library errors print their source inline).
fn message(err: &anyhow::Error) -> String {
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
    }
    msg
}
