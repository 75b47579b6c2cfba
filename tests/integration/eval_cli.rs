//! `eval`, `merge`, `compare`, `bench` and `report` from the command line, on the fixture zoo
//! (tests/fixtures/runtime/zoo: tiny random-weight variants of each connector family).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use common::{repo, short_bench};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lynx-zoo"));
    c.env("LYNX_ZOO_DIR", repo().join("tests/fixtures/runtime/zoo"));
    c
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn sigkilled_eval_resumes_to_the_same_predictions() {
    let t = tempfile::tempdir().unwrap();
    let bench = short_bench(t.path(), 600);
    let eval = |out: &Path| {
        let mut c = bin();
        c.args(["eval", "tiny", "--batch", "1", "--bench"]).arg(&bench).arg("--out").arg(out);
        c
    };
    run_ok(&mut eval(&t.path().join("whole")));
    let whole = fs::read(t.path().join("whole/tiny/predictions.jsonl")).unwrap();
    assert_eq!(whole.iter().filter(|&&b| b == b'\n').count(), 600);

    let out = t.path().join("killed");
    let file = out.join("tiny/predictions.jsonl");
    let mut child = eval(&out).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    let lines = |p: &Path| fs::read(p).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0);
    while lines(&file) < 50 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let at_kill = lines(&file);
    assert!((50..600).contains(&at_kill), "the run was not interrupted midway ({at_kill} lines)");

    run_ok(&mut eval(&out));
    assert_eq!(fs::read(&file).unwrap(), whole, "resumed predictions differ from an uninterrupted run");
}

#[test]
fn shards_merge_into_the_unsharded_file() {
    let t = tempfile::tempdir().unwrap();
    let bench = short_bench(t.path(), 30);
    run_ok(bin().args(["eval", "tiny-xattn", "--bench"]).arg(&bench).arg("--out").arg(t.path().join("a")));
    let out = t.path().join("b");
    for shard in ["0/3", "1/3", "2/3"] {
        run_ok(bin().args(["eval", "tiny-xattn", "--shard", shard, "--bench"]).arg(&bench).arg("--out").arg(&out));
    }
    let msg = run_ok(bin().args(["merge", "tiny-xattn", "--out"]).arg(&out));
    assert!(msg.contains("merged 3 shards"), "{msg}");
    assert_eq!(
        fs::read(out.join("tiny-xattn/predictions.jsonl")).unwrap(),
        fs::read(t.path().join("a/tiny-xattn/predictions.jsonl")).unwrap()
    );
    // An incomplete set of shards is refused.
    fs::remove_file(out.join("tiny-xattn/predictions.shard-2-of-3.jsonl")).unwrap();
    let o = bin().args(["merge", "tiny-xattn", "--out"]).arg(&out).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("missing"));
}

/// Parses `csv` with Python's csv module and returns, per column, whether every non-empty cell
/// parses as a number (`float()`), so the test sees the file as a pandas/csv user would.
fn python_csv_numeric_columns(csv: &Path) -> serde_json::Value {
    let script = "import csv, json, sys\nrows = list(csv.DictReader(open(sys.argv[1], newline='')))\n\
        def num(v):\n    try:\n        float(v); return True\n    except ValueError:\n        return False\n\
        print(json.dumps({'rows': len(rows), 'columns': {k: all(num(r[k]) for r in rows if r[k] != '') for k in rows[0]}}))";
    let out = Command::new("python3").arg("-c").arg(script).arg(csv).output().expect("python3 is needed by this test");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn compare_writes_every_table_in_every_format_and_report_writes_markdown_and_plot() {
    let t = tempfile::tempdir().unwrap();
    let bench = short_bench(t.path(), 12);
    let results = t.path().join("results");
    let compare = |args: &[&str]| {
        let mut c = bin();
        c.args(["compare", "--baseline", "tiny", "--items", "1", "--repeats", "1", "--bench"])
            .arg(&bench)
            .arg("--out")
            .arg(&results)
            .args(args);
        run_ok(&mut c)
    };
    let table = compare(&[]);
    for title in ["Accuracy (baseline `tiny`)", "Accuracy per class", "Latency per item", "Accuracy against cost"] {
        assert!(table.contains(title), "{table}");
    }
    for v in ["tiny (baseline)", "tiny-xattn", "tiny-blind (blind)", "majority floor"] {
        assert!(table.contains(v), "{v}: {table}");
    }
    for line in table.lines() {
        assert!(line.chars().count() <= 120 || !line.starts_with('|'), "{} columns: {line}", line.chars().count());
    }
    // JSON: an array of records with the CSV's keys.
    let json: serde_json::Value = serde_json::from_str(&compare(&["--format", "json"])).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(
        rows.iter().map(|r| r["variant"].as_str().unwrap()).collect::<Vec<_>>(),
        ["tiny", "tiny-blind", "tiny-xattn", "majority floor"]
    );
    assert!(rows[0]["accuracy_pct"].is_number() && rows[0]["delta_pts"].is_null());
    assert!(rows[2]["p_holm"].is_number() && rows[2]["vision_reliance_pts"].is_number());
    assert!(rows[1]["vision_reliance_pts"].is_null(), "the blind control has no image swap");
    let all: serde_json::Value = serde_json::from_str(&compare(&["--format", "json", "--table", "all"])).unwrap();
    assert!(all["latency"][0]["e2e_ms_mean"].as_f64().unwrap() > 0.0, "{}", all["latency"]);
    assert!(all["pareto"][0]["pareto"].is_boolean());
    // CSV: one table per file, every numeric column numbers only, as Python's csv module reads it.
    let dir = t.path().join("tables");
    compare(&["--format", "csv", "--table", "all", "--output", dir.to_str().unwrap()]);
    for (table, numeric) in [
        (
            "accuracy",
            &[
                "accuracy_pct",
                "ci_low_pct",
                "ci_high_pct",
                "delta_pts",
                "p_value",
                "p_holm",
                "q_bh",
                "vision_reliance_pts",
            ][..],
        ),
        ("per_class", &["object_pct", "counting_delta_pts"][..]),
        ("latency", &["e2e_ms_p50", "e2e_ms_p90", "e2e_ms_mean_ci_low", "items_per_s_b8", "rss_added_mib"][..]),
        ("pareto", &["accuracy_pct", "e2e_ms_mean", "items_per_s_b8", "disk_mb"][..]),
    ] {
        let parsed = python_csv_numeric_columns(&dir.join(format!("{table}.csv")));
        assert!(parsed["rows"].as_u64().unwrap() >= 3, "{table}: {parsed}");
        for key in numeric {
            assert_eq!(parsed["columns"][key], true, "{table}.{key}: {parsed}");
        }
        let text_columns = [
            "variant",
            "role",
            "origin",
            "source",
            "changes",
            "claim",
            "run_id",
            "measured_at",
            "provider",
            "dominated_by",
            "pareto",
        ];
        for (k, v) in parsed["columns"].as_object().unwrap() {
            assert!(*v == true || text_columns.contains(&k.as_str()), "{table}.{k} holds text");
        }
    }
    // CSV on stdout holds one table; several need a folder.
    let o = bin()
        .args(["compare", "--no-latency", "--format", "csv", "--table", "all", "--bench"])
        .arg(&bench)
        .arg("--out")
        .arg(&results)
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--output DIR"));
    // The whole zoo's comparison file; a subset never overwrites it.
    let whole = fs::read(results.join("comparison.json")).unwrap();
    run_ok(
        bin().args(["compare", "tiny", "tiny-blind", "--no-latency", "--bench"]).arg(&bench).arg("--out").arg(&results),
    );
    assert_eq!(fs::read(results.join("comparison.json")).unwrap(), whole);
    assert_eq!(fs::read_dir(results.join("comparisons")).unwrap().count(), 1);

    let doc = t.path().join("docs/results.md");
    fs::create_dir_all(doc.parent().unwrap()).unwrap();
    fs::write(
        &doc,
        "# Results\n\nA hand-written reading.\n\n<!-- report:begin -->\nold\n<!-- report:end -->\n\nMore text.\n",
    )
    .unwrap();
    let plot = t.path().join("docs/plot.svg");
    let report = |extra: &[&str]| {
        let mut c = bin();
        c.args(["report", "--results"]).arg(&results).arg("--out").arg(&doc).arg("--plot").arg(&plot).args(extra);
        c.output().unwrap()
    };
    let o = report(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = fs::read_to_string(&doc).unwrap();
    assert!(md.contains("A hand-written reading.") && md.contains("More text.") && !md.contains("\nold\n"), "{md}");
    assert!(md.contains("### Accuracy") && md.contains("| majority floor |") && md.contains("](plot.svg)"), "{md}");
    assert!(fs::read_to_string(&plot).unwrap().contains("<svg"));

    // Latency of one variant measured again, alone: report refuses to mix runs, or marks them.
    run_ok(
        bin()
            .args(["bench", "tiny", "--items", "1", "--repeats", "1", "--bench"])
            .arg(&bench)
            .arg("--out")
            .arg(&results),
    );
    let o = report(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("2 measurement runs") && err.contains("tiny"), "{err}");
    let o = report(&["--mixed-runs"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = fs::read_to_string(&doc).unwrap();
    assert!(md.contains("different measurement runs") && md.contains("| tiny (baseline) [run "), "{md}");
}

#[test]
fn eval_refuses_a_folder_of_another_run_and_compare_replaces_it() {
    let t = tempfile::tempdir().unwrap();
    let bench = short_bench(t.path(), 6);
    let out = t.path().join("r");
    let eval = |extra: &[&str]| {
        let mut c = bin();
        c.args(["eval", "tiny", "--bench"]).arg(&bench).arg("--out").arg(&out).args(extra);
        c.output().unwrap()
    };
    assert!(eval(&[]).status.success());
    let o = eval(&["--max-new-tokens", "3"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("holds results of another run") && err.contains("--max-new-tokens: 24 -> 3"), "{err}");
    assert!(err.contains("--out DIR"), "says how to proceed: {err}");
    let o = bin()
        .args(["compare", "tiny", "--no-latency", "--max-new-tokens", "3", "--bench"])
        .arg(&bench)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("tiny/run.json")).unwrap()).unwrap();
    assert_eq!(spec["max_new_tokens"], 3);
}

#[test]
fn workers_write_the_files_of_one_and_stop_at_a_bad_item_keeping_the_batches_before_it() {
    let t = tempfile::tempdir().unwrap();
    let bench = short_bench(t.path(), 60);
    let eval = |bench: &Path, out: &str, workers: &str| {
        bin()
            .args(["eval", "tiny", "tiny-xattn", "--batch", "3", "--workers", workers, "--bench"])
            .arg(bench)
            .arg("--out")
            .arg(t.path().join(out))
            .output()
            .unwrap()
    };
    for (out, workers) in [("one", "1"), ("three", "3")] {
        let o = eval(&bench, out, workers);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for v in ["tiny", "tiny-xattn"] {
        let file = |out: &str| fs::read(t.path().join(out).join(v).join("predictions.jsonl")).unwrap();
        assert_eq!(file("one"), file("three"), "{v}: three workers wrote other predictions than one");
        assert_eq!(file("three").iter().filter(|&&b| b == b'\n').count(), 60);
    }

    // Item 40 (line 41) names a picture that is not one: the run stops there naming the line, and
    // the batches before its window of 18 items (the pictures of a window are read before its
    // batches run) are written, whichever worker got there first.
    fs::write(t.path().join("m/bad.png"), b"not a png").unwrap();
    let text = fs::read_to_string(&bench).unwrap();
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| if i == 40 { l.replace("m/b.png", "m/bad.png") } else { l.to_string() })
        .collect();
    let broken = t.path().join("broken.jsonl");
    fs::write(&broken, lines.join("\n") + "\n").unwrap();
    for workers in ["1", "3"] {
        let out = format!("broken-{workers}");
        let o = eval(&broken, &out, workers);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains("broken.jsonl:41"), "{workers} worker(s): {err}");
        let written = fs::read(t.path().join(&out).join("tiny/predictions.jsonl")).unwrap();
        assert_eq!(written.iter().filter(|&&b| b == b'\n').count(), 36, "{workers} worker(s)");
        assert_eq!(
            written,
            fs::read(t.path().join("one/tiny/predictions.jsonl")).unwrap()[..written.len()],
            "{workers} worker(s): the written batches differ from a whole run's"
        );
    }
}

/// `text` without ANSI colour sequences (`ESC [ ... m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().take_while(|&c| c != 'm').for_each(drop);
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn workers_auto_follows_the_cores_threads_and_run_and_bench_refuses_a_count() {
    let t = tempfile::tempdir().unwrap();
    let bench = short_bench(t.path(), 40); // 3 windows of 16 items at batch 8
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let eval = |out: &str, extra: &[&str]| {
        let o = bin()
            .env("LYNX_ZOO_LOG", "info")
            .args(["eval", "tiny", "--bench"])
            .arg(&bench)
            .arg("--out")
            .arg(t.path().join(out))
            .args(extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{extra:?}: {err}");
        without_colours(&err)
    };
    let err = eval("auto", &[]);
    assert!(err.contains(&format!("workers={}", cores.min(3))), "auto on {cores} cores: {err}");
    let err = eval("threads", &["--threads", "1"]);
    assert!(err.contains("workers=1 threads=1"), "--threads given: one worker: {err}");
    let err = eval("short", &["--workers", "8", "--limit", "10"]);
    assert!(err.contains("workers=1"), "a run of one window loads one copy: {err}");
    let err = eval("two", &["--workers", "2", "--limit", "20"]);
    assert!(err.contains(&format!("workers=2 threads={}", (cores / 2).max(1))), "{err}");

    let o = bin().args(["bench", "tiny", "--workers", "2", "--out"]).arg(t.path().join("b")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("`bench` times one copy"), "{err}");
}

#[test]
fn the_main_job_runs_on_the_shipped_zoo() {
    // `bash scripts/compare` on a slice: the shipped baseline, its cross-attention twin and the
    // blind control answer the first 22 test items (two per class) and are compared.
    let t = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lynx-zoo"))
        .current_dir(repo())
        .args(["compare", "lynx", "lynx-xattn", "lynx-blind", "--limit", "22", "--items", "1", "--repeats", "1"])
        .args(["--format", "json", "--out"])
        .arg(t.path())
        .env_remove("LYNX_ZOO_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["variant"].as_str().unwrap()).collect();
    assert_eq!(names, ["lynx", "lynx-xattn", "lynx-blind", "majority floor"]);
    for row in rows.as_array().unwrap() {
        let acc = row["accuracy_pct"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&acc));
        assert_eq!(row["n_items"], 22);
    }
    assert_eq!(rows[2]["role"], "blind");
    assert!(rows[0]["vision_reliance_pts"].is_number(), "the baseline's image swap ran");
    let preds = fs::read_to_string(t.path().join("lynx/predictions.jsonl")).unwrap();
    assert_eq!(preds.lines().count(), 22);
}
