//! `eval --shard auto` as a batch scheduler runs it -- a Slurm job array and a Kubernetes Indexed
//! Job, simulated through their environment variables -- then `merge`, on the fixture zoo
//! (tests/fixtures/runtime/zoo), and the plain progress lines such a job's log gets.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use crate::common;
use common::{repo, short_bench};

/// The scheduler variables `--shard auto` reads; removed from every child so that running these
/// tests inside a real Slurm or Kubernetes job changes nothing.
const SCHEDULER_VARS: &[&str] = &[
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_JOB_ID",
    "JOB_COMPLETION_INDEX",
];

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lynx-zoo"));
    c.env("LYNX_ZOO_DIR", repo().join("tests/fixtures/runtime/zoo"));
    for v in SCHEDULER_VARS {
        c.env_remove(v);
    }
    c.env_remove("LYNX_ZOO_PROGRESS_SECS");
    c
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `eval tiny` of `bench` into `out` with `args` and `env`, batch 2 in every run (the batch size
/// is part of a run: shards of one run share it).
fn eval(bench: &Path, out: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = bin();
    c.args(["eval", "tiny", "--batch", "2", "--bench"]).arg(bench).arg("--out").arg(out).args(args);
    c.envs(env.iter().copied());
    c
}

fn lines(p: &Path) -> usize {
    fs::read_to_string(p).unwrap().lines().count()
}

const ITEMS: usize = 14;

/// Merges `out/tiny` and checks it against the unsharded run in `whole/tiny`.
fn merge_and_compare(out: &Path, whole: &Path) {
    let merged = run_ok(bin().args(["merge", "tiny", "--out"]).arg(out));
    let msg = String::from_utf8_lossy(&merged.stdout);
    assert!(msg.contains("merged 3 shards") && msg.contains("merged 3 timing files"), "{msg}");
    assert_eq!(
        fs::read(out.join("tiny/predictions.jsonl")).unwrap(),
        fs::read(whole.join("tiny/predictions.jsonl")).unwrap(),
        "merged predictions differ from the unsharded run's"
    );
    let timings = fs::read_to_string(out.join("tiny/timings.jsonl")).unwrap();
    let ids: Vec<String> = timings
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..ITEMS).map(|i| format!("t/{i}")).collect();
    assert_eq!(ids, expected, "timings.jsonl is not one line per item in benchmark order");
}

#[test]
fn a_slurm_array_and_a_kubernetes_indexed_job_merge_into_the_unsharded_run() {
    let t = tempfile::tempdir().unwrap();
    let bench = short_bench(t.path(), ITEMS);
    let whole = t.path().join("whole");
    run_ok(&mut eval(&bench, &whole, &[], &[]));
    assert_eq!(lines(&whole.join("tiny/predictions.jsonl")), ITEMS);
    assert_eq!(lines(&whole.join("tiny/timings.jsonl")), ITEMS);

    // `sbatch --array=1-3`: tasks 1, 2, 3 are shards 0, 1, 2 of 3.
    let slurm = t.path().join("slurm");
    for id in ["1", "2", "3"] {
        let env = [("SLURM_ARRAY_TASK_ID", id), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "3")];
        let out = run_ok(&mut eval(&bench, &slurm, &["--shard", "auto"], &env));
        let index: usize = id.parse::<usize>().unwrap() - 1;
        let file = slurm.join(format!("tiny/predictions.shard-{index}-of-3.jsonl"));
        assert_eq!(lines(&file), (index..ITEMS).step_by(3).count(), "task {id}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("(shard {index}/3)")), "task {id}");
    }
    merge_and_compare(&slurm, &whole);

    // A Kubernetes Indexed Job with `completions: 3`.
    let k8s = t.path().join("k8s");
    for index in ["0", "1", "2"] {
        run_ok(&mut eval(&bench, &k8s, &["--shard", "auto/3"], &[("JOB_COMPLETION_INDEX", index)]));
    }
    merge_and_compare(&k8s, &whole);

    // A lost timings shard is a warning, and the timings hold the other shards' items.
    fs::remove_file(k8s.join("tiny/timings.shard-1-of-3.jsonl")).unwrap();
    let merged = run_ok(bin().args(["merge", "tiny", "--out"]).arg(&k8s));
    let stderr = String::from_utf8_lossy(&merged.stderr);
    assert!(stderr.contains("warning") && stderr.contains("timings.shard-1-of-3.jsonl"), "{stderr}");
    assert_eq!(lines(&k8s.join("tiny/timings.jsonl")), ITEMS - (1..ITEMS).step_by(3).count());

    // A shard file holding an item twice is refused with its file and line.
    let shard0 = k8s.join("tiny/predictions.shard-0-of-3.jsonl");
    let text = fs::read_to_string(&shard0).unwrap();
    let first = text.lines().next().unwrap().to_string();
    fs::write(&shard0, format!("{text}{first}\n")).unwrap();
    let o = bin().args(["merge", "tiny", "--out"]).arg(&k8s).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let n = text.lines().count() + 1;
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("predictions.shard-0-of-3.jsonl:{n}")) && stderr.contains("appears twice"),
        "{stderr}"
    );
}

#[test]
fn a_sharded_image_swap_control_merges_in_its_own_folder() {
    let t = tempfile::tempdir().unwrap();
    let bench = short_bench(t.path(), 9);
    let whole = t.path().join("whole");
    run_ok(&mut eval(&bench, &whole, &["--image-swap"], &[]));
    let out = t.path().join("k8s");
    for index in ["0", "1", "2"] {
        run_ok(&mut eval(&bench, &out, &["--image-swap", "--shard", "auto/3"], &[("JOB_COMPLETION_INDEX", index)]));
    }
    let merged = run_ok(bin().args(["merge", "tiny", "--out"]).arg(&out));
    let msg = String::from_utf8_lossy(&merged.stdout);
    assert!(msg.contains("tiny (image swap): merged 3 shards"), "{msg}");
    for run in ["tiny", "tiny/control-image-swap"] {
        let file = format!("{run}/predictions.jsonl");
        assert_eq!(fs::read(out.join(&file)).unwrap(), fs::read(whole.join(&file)).unwrap(), "{file}");
        assert_eq!(lines(&out.join(format!("{run}/timings.jsonl"))), 9, "{run}");
    }
}

#[test]
fn a_batch_log_gets_plain_progress_lines() {
    let t = tempfile::tempdir().unwrap();
    let bench = short_bench(t.path(), 6);
    // stderr is a pipe here, as in a batch job's log.
    let out = run_ok(eval(&bench, &t.path().join("r"), &[], &[]).env("LYNX_ZOO_PROGRESS_SECS", "0"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let progress: Vec<&str> = stderr.lines().filter(|l| l.starts_with("tiny: ")).collect();
    assert_eq!(progress.first().copied(), Some("tiny: 0/6 items (0.0%), starting"), "{stderr}");
    // Batches of 2: after 2 and 4 items a line with the rate and the ETA, then the final line.
    assert!(
        progress.iter().any(|l| l.starts_with("tiny: 2/6 items (33.3%), ") && l.contains(" items/s, ETA ")),
        "{stderr}"
    );
    assert!(progress.iter().any(|l| l.starts_with("tiny: 4/6 items (66.7%), ")), "{stderr}");
    let last = progress.last().copied().unwrap_or_default();
    assert!(last.starts_with("tiny: 6/6 items (100.0%), ") && last.contains(" items/s, done in "), "{stderr}");
    assert_eq!(progress.len(), 4, "{stderr}");
    // No bar: nothing that redraws a terminal line.
    assert!(!stderr.contains('\r') && !stderr.contains('\u{1b}'), "{stderr:?}");

    // A bad interval falls back to the default with one warning; the run still succeeds.
    let out = run_ok(eval(&bench, &t.path().join("s"), &[], &[]).env("LYNX_ZOO_PROGRESS_SECS", "soon"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("LYNX_ZOO_PROGRESS_SECS `soon`").count(), 1, "{stderr}");
}

#[test]
fn bad_scheduler_variables_are_errors_that_name_them() {
    let t = tempfile::tempdir().unwrap();
    let bench = short_bench(t.path(), 3);
    let out = t.path().join("r");
    // (--shard, the scheduler's variables, what the message must name)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("auto", &[], "found neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX"),
        ("auto", &[("SLURM_ARRAY_TASK_ID", "one"), ("SLURM_ARRAY_TASK_COUNT", "3")], "SLURM_ARRAY_TASK_ID `one`"),
        (
            "auto",
            &[("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "3")],
            "SLURM_ARRAY_TASK_ID `4`",
        ),
        ("auto", &[("SLURM_ARRAY_TASK_ID", "0"), ("SLURM_ARRAY_TASK_COUNT", "x")], "SLURM_ARRAY_TASK_COUNT `x`"),
        (
            "auto",
            &[("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_STEP", "4")],
            "SLURM_ARRAY_TASK_STEP `4`",
        ),
        ("auto/4", &[("SLURM_ARRAY_TASK_ID", "0"), ("SLURM_ARRAY_TASK_COUNT", "3")], "SLURM_ARRAY_TASK_COUNT"),
        ("auto", &[("JOB_COMPLETION_INDEX", "0")], "JOB_COMPLETION_INDEX is set"),
        ("auto/3", &[("JOB_COMPLETION_INDEX", "3")], "JOB_COMPLETION_INDEX `3`"),
        ("auto/3", &[("JOB_COMPLETION_INDEX", "-1")], "JOB_COMPLETION_INDEX `-1`"),
    ];
    for (spec, env, needle) in cases {
        let o = eval(&bench, &out, &["--shard", spec], env).output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "--shard {spec} {env:?}: {stderr}");
        assert!(stderr.contains(&format!("invalid --shard `{spec}`")) && stderr.contains(needle), "{env:?}: {stderr}");
        assert!(!out.join("tiny").exists(), "--shard {spec} {env:?} wrote results before failing");
    }
    // A malformed spec is a usage error.
    let o = eval(&bench, &out, &["--shard", "auto/0"], &[]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
}
