//! A closed stdout pipe (`lynx-zoo list | head -1`) ends a command quietly, as it ends `cat`:
//! no Rust panic, no "Broken pipe" error on stderr.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn zoo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runtime/zoo")
}

/// Runs `lynx-zoo ARGS` with stdout a pipe; when `read_first` reads one line first (`| head -1`),
/// then closes the pipe, waits, and returns (the line read, stderr).
fn closed_pipe(args: &[&str], read_first: bool) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lynx-zoo"))
        .args(args)
        .arg("--zoo")
        .arg(zoo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    if read_first {
        BufReader::new(stdout).read_line(&mut first).unwrap();
    } else {
        // The read end closes before the program writes anything: every write meets a closed pipe
        // (the child has no copy of the read end: Rust opens pipes close-on-exec).
        drop(stdout);
    }
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    child.wait().unwrap();
    (first, stderr)
}

fn assert_quiet(args: &[&str]) {
    for read_first in [true, false] {
        let (first, stderr) = closed_pipe(args, read_first);
        if read_first {
            assert!(!first.trim().is_empty(), "`{}` printed nothing", args.join(" "));
        }
        assert!(!stderr.contains("panicked"), "`{}`: {stderr}", args.join(" "));
        assert!(!stderr.to_lowercase().contains("broken pipe"), "`{}`: {stderr}", args.join(" "));
    }
}

#[test]
fn show_into_a_closed_pipe_ends_quietly() {
    assert_quiet(&["show", "tiny"]);
}

#[test]
fn list_into_a_closed_pipe_ends_quietly() {
    assert_quiet(&["list"]);
}
