//! A results folder has one writer at a time, and every command that reads predictions back
//! (resume, `eval`, `compare`, `report`) refuses a duplicated or foreign id with its `file:line`
//! (issue 14, gap 1). On the fixture zoo (tests/fixtures/runtime/zoo).

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use common::{repo, short_bench};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lynx-zoo"));
    c.env("LYNX_ZOO_DIR", repo().join("tests/fixtures/runtime/zoo"));
    c
}

fn lines(p: &Path) -> usize {
    fs::read(p).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_second_writer_is_refused_with_the_holders_pid_and_a_killed_holder_does_not_block() {
    let t = tempfile::tempdir().unwrap();
    let bench = short_bench(t.path(), 400);
    let out = t.path().join("r");
    let eval = |extra: &[&str]| {
        let mut c = bin();
        c.args(["eval", "tiny", "--batch", "1", "--bench"]).arg(&bench).arg("--out").arg(&out).args(extra);
        c
    };
    let file = out.join("tiny/predictions.jsonl");
    let mut first = eval(&[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while lines(&file) < 5 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(lines(&file) >= 5, "the first eval did not start writing");

    // The same run started again while the first one writes: refused, naming the holder.
    let second = eval(&[]).output().unwrap();
    let err = stderr(&second);
    let still_running = first.try_wait().unwrap().is_none();
    assert!(!second.status.success(), "a second writer was let in (first still running: {still_running}): {err}");
    assert!(err.contains(&format!("pid {}", first.id())), "names the holder's pid: {err}");
    assert!(err.contains(&out.join("tiny").display().to_string()), "names the folder: {err}");
    // `merge` into the same folder is refused as well.
    let o = bin().args(["merge", "tiny", "--out"]).arg(&out).output().unwrap();
    assert!(!o.status.success() && stderr(&o).contains(&format!("pid {}", first.id())), "{}", stderr(&o));

    // kill -9: the kernel drops the lock, and the next run resumes without a complaint.
    first.kill().unwrap();
    first.wait().unwrap();
    let o = eval(&[]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&file), 400);
    let text = fs::read_to_string(&file).unwrap();
    let mut ids: Vec<&str> = text.lines().map(|l| &l[..l.find(",\"position\"").unwrap()]).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 400, "every item once");
}

/// Evaluates the first 6 items of a 9-item benchmark, then appends `line` (a copy of line
/// `copy` of the predictions file, passed through `edit`) and returns the folder.
fn tampered(t: &Path, copy: usize, edit: &dyn Fn(&str) -> String) -> (std::path::PathBuf, std::path::PathBuf) {
    let bench = short_bench(t, 9);
    let out = t.join("r");
    let o =
        bin().args(["eval", "tiny", "--limit", "6", "--bench"]).arg(&bench).arg("--out").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let file = out.join("tiny/predictions.jsonl");
    let text = fs::read_to_string(&file).unwrap();
    let line = edit(text.lines().nth(copy - 1).unwrap());
    // A blank line first: the error must count file lines, not predictions.
    fs::write(&file, format!("{text}\n{line}\n")).unwrap();
    (bench, out)
}

#[test]
fn resume_compare_and_report_refuse_a_duplicated_id_with_its_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let (bench, out) = tampered(t.path(), 2, &|l| l.to_string());
    let file = out.join("tiny/predictions.jsonl");
    let at = format!("{}:8", file.display());
    let o =
        bin().args(["eval", "tiny", "--limit", "6", "--bench"]).arg(&bench).arg("--out").arg(&out).output().unwrap();
    assert!(!o.status.success(), "resume accepted a duplicate: {}", String::from_utf8_lossy(&o.stdout));
    assert!(stderr(&o).contains(&at) && stderr(&o).contains("`t/1` appears twice"), "{}", stderr(&o));
    let o = bin()
        .args(["compare", "tiny", "--no-latency", "--no-image-swap", "--limit", "6", "--bench"])
        .arg(&bench)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success(), "compare accepted a duplicate: {}", String::from_utf8_lossy(&o.stdout));
    assert!(stderr(&o).contains(&at) && stderr(&o).contains("appears twice"), "{}", stderr(&o));
    let doc = t.path().join("results.md");
    let o = bin()
        .args(["report", "--results"])
        .arg(&out)
        .arg("--out")
        .arg(&doc)
        .arg("--plot")
        .arg(t.path().join("p.svg"))
        .output()
        .unwrap();
    assert!(!o.status.success() && stderr(&o).contains(&at), "{}", stderr(&o));
}

#[test]
fn resume_refuses_an_id_foreign_to_the_run() {
    let t = tempfile::tempdir().unwrap();
    // Item t/7 is in the benchmark but beyond `--limit 6`; t/99 is not in it at all.
    for (from, to, says) in [("t/1", "t/7", "not among the 6 items"), ("t/1", "t/99", "not among the 6 items")] {
        let dir = t.path().join(to.replace('/', "-"));
        fs::create_dir_all(&dir).unwrap();
        let (bench, out) = tampered(&dir, 2, &|l| l.replace(from, to));
        let o = bin()
            .args(["eval", "tiny", "--limit", "6", "--bench"])
            .arg(&bench)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let at = format!("{}:8", out.join("tiny/predictions.jsonl").display());
        assert!(!o.status.success(), "resume accepted `{to}`: {}", String::from_utf8_lossy(&o.stdout));
        assert!(stderr(&o).contains(&at) && stderr(&o).contains(says), "{}", stderr(&o));
    }
}
