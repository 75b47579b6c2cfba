//! The benchmark from the command line: determinism, the committed test split, and errors that
//! name file and line.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use lynx_zoo::benchmark::{Benchmark, QuestionClass};
use lynx_zoo::score::Expected;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lynx-zoo"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().to_path_buf(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn generate(split: &str, n: usize, seed: u64, out: &Path) {
    let status = bin()
        .args(["data", "generate", "--split", split, "--n", &n.to_string(), "--seed", &seed.to_string(), "--out"])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn same_command_same_bytes_other_seed_other_bytes() {
    let t = tempfile::tempdir().unwrap();
    generate("val", 40, 3, &t.path().join("a"));
    generate("val", 40, 3, &t.path().join("b"));
    generate("val", 40, 4, &t.path().join("c"));
    let a = files(&t.path().join("a"));
    assert_eq!(a, files(&t.path().join("b")));
    assert_ne!(a, files(&t.path().join("c")));
}

#[test]
fn committed_test_split_is_what_the_generator_makes() {
    let committed = repo().join("data/test");
    let meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(committed.join("meta.json")).unwrap()).unwrap();
    let (n, seed) = (meta["n"].as_u64().unwrap() as usize, meta["seed"].as_u64().unwrap());
    let t = tempfile::tempdir().unwrap();
    generate("test", n, seed, t.path());
    assert_eq!(files(t.path()), files(&committed), "data/test is stale: regenerate it (docs/benchmark.md)");
}

#[test]
fn committed_test_split_loads_covers_every_class_and_scores_its_own_responses() {
    let bench = Benchmark::load(repo().join("data/test/annotations.jsonl")).unwrap();
    assert!(bench.records.len() <= 600);
    let counts = bench.class_counts();
    for class in QuestionClass::ALL {
        assert!(
            counts.get(class.name()).copied().unwrap_or(0) >= 30,
            "class {} has {:?} items",
            class.name(),
            counts.get(class.name())
        );
    }
    let mut heldout = 0;
    for r in &bench.records {
        let response = r.extra_str("response").unwrap();
        assert!(r.is_correct(response), "{}: {response:?} vs {:?}", r.location(), r.answers);
        let canonical = r.extra_str("canonical_response").unwrap();
        // The canonical response answers the canonical question, which carries no instruction.
        let wrong = r.wrong_answers();
        let canonical_item =
            Expected { answers: &r.answers, wrong: &wrong, space: r.answer_space(), instruction: None };
        assert!(canonical_item.judge(canonical).is_correct(), "{}: {canonical:?} vs {:?}", r.location(), r.answers);
        if r.extra_str("phrasing") == Some("heldout") {
            heldout += 1;
            assert!(r.instruction().is_some(), "{}", r.location());
        }
    }
    assert!(heldout > bench.records.len() / 4, "only {heldout} held-out items");
    let size: u64 = files(&repo().join("data/test")).iter().map(|(_, b)| b.len() as u64).sum();
    assert!(size <= 5 * 1024 * 1024, "test split is {size} bytes");
}

#[test]
fn check_reports_file_and_line_for_bad_input() {
    let t = tempfile::tempdir().unwrap();
    generate("val", 3, 1, t.path());
    let ann = t.path().join("annotations.jsonl");
    let good = fs::read_to_string(&ann).unwrap();
    let lines: Vec<&str> = good.lines().collect();

    // A corrupt JSON line.
    fs::write(&ann, format!("{}\n{{broken\n", lines[0])).unwrap();
    let out = bin().args(["data", "check"]).arg(&ann).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("annotations.jsonl:2") && err.contains("bad JSON"), "{err}");

    // A missing image.
    fs::write(&ann, &good).unwrap();
    fs::remove_file(t.path().join("images/000001.png")).unwrap();
    let out = bin().args(["data", "check"]).arg(&ann).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("annotations.jsonl:2") && err.contains("does not exist"), "{err}");

    // An unreadable PNG.
    fs::write(t.path().join("images/000001.png"), b"not a png").unwrap();
    let out = bin().args(["data", "check"]).arg(&ann).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("annotations.jsonl:2") && err.contains("000001.png"), "{err}");
}

/// Writes `{"id", "prediction"[, "question"]}` lines for `bench`, answering each record with `answer(record)`.
fn write_predictions(
    path: &Path,
    bench: &Benchmark,
    answer: impl Fn(&lynx_zoo::benchmark::Record) -> String,
    question: impl Fn(&lynx_zoo::benchmark::Record) -> Option<String>,
) {
    let lines: Vec<String> = bench
        .records
        .iter()
        .map(|r| {
            let mut line = serde_json::json!({"id": r.id(), "prediction": answer(r)});
            if let Some(q) = question(r) {
                line["question"] = q.into();
            }
            line.to_string()
        })
        .collect();
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn score(files: &[&Path]) -> std::process::Output {
    let mut cmd = bin();
    cmd.args(["data", "score", "--format", "markdown", "--bench"]).arg(repo().join("data/test/annotations.jsonl"));
    cmd.args(files).output().unwrap()
}

#[test]
fn data_score_scores_other_models_predictions_and_names_bad_lines() {
    let bench = Benchmark::load(repo().join("data/test/annotations.jsonl")).unwrap();
    let t = tempfile::tempdir().unwrap();
    let (oracle, echo) = (t.path().join("oracle.jsonl"), t.path().join("echo.jsonl"));
    write_predictions(&oracle, &bench, |r| r.answers[0].clone(), |r| Some(r.question.clone()));
    write_predictions(&echo, &bench, |r| r.question.clone(), |_| None);
    let out = score(&[&oracle, &echo]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let row = |name: &str| text.lines().find(|l| l.starts_with(&format!("| {name} "))).unwrap().to_string();
    assert!(row("oracle (baseline)").contains("| 100.0 [100.0, 100.0] |"), "{text}");
    // Echoing the question names the asked-about object, never the answer: far below the oracle,
    // significantly after Holm's correction, and below the majority floor, which is a row too.
    let echo_row = row("echo");
    let cell = |row: &str, k: usize| row.split('|').nth(k).unwrap().trim().to_string();
    let overall: f64 = cell(&echo_row, 3).split_whitespace().next().unwrap().parse().unwrap();
    assert!(overall < 5.0 && cell(&echo_row, 4).ends_with('*'), "{echo_row}");
    let floor: f64 = cell(&row("majority floor"), 3).split_whitespace().next().unwrap().parse().unwrap();
    assert!(overall < floor && floor > 15.0, "{text}");

    // A line for a question of another split (same ids), a missing item, a broken line.
    let other = t.path().join("other.jsonl");
    write_predictions(&other, &bench, |r| r.answers[0].clone(), |r| Some(format!("{} (other split)", r.question)));
    let err = String::from_utf8_lossy(&score(&[&other]).stderr).to_string();
    assert!(err.contains("other.jsonl:1:") && err.contains("another split"), "{err}");
    let text = fs::read_to_string(&oracle).unwrap();
    let short = t.path().join("short.jsonl");
    fs::write(&short, text.lines().skip(1).collect::<Vec<_>>().join("\n")).unwrap();
    let err = String::from_utf8_lossy(&score(&[&short]).stderr).to_string();
    assert!(
        err.contains("short.jsonl") && err.contains(&format!("no prediction for 1 of {}", bench.records.len())),
        "{err}"
    );
    let broken = t.path().join("broken.jsonl");
    fs::write(&broken, format!("{}\n{{\"id\": 3}}\n", text.lines().next().unwrap())).unwrap();
    let err = String::from_utf8_lossy(&score(&[&broken]).stderr).to_string();
    assert!(err.contains("broken.jsonl:2:") && err.contains("\"prediction\""), "{err}");
}
