//! Numeric flags are bounded: 0 and absurd values are usage errors (exit 2) that name the flag and
//! the accepted range, before any model is loaded (issue 14, gap 7).

use std::process::Command;

use crate::common;

fn lynx(args: &[&str]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_lynx-zoo"))
        .args(args)
        .env("LYNX_ZOO_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/runtime/zoo"))
        .output()
        .unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn out_of_range_flags_are_usage_errors_naming_the_flag() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().to_str().unwrap();
    let eval = ["eval", "tiny", "--out", out];
    let bench = ["bench", "tiny", "--out", out];
    let ask = ["ask", "tiny", "--image", "data/test/images/000000.png", "--question", "q"];
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        ([&eval[..], &["--limit", "0"]].concat(), "--limit", "0"),
        ([&eval[..], &["--batch", "0"]].concat(), "--batch", "0"),
        ([&eval[..], &["--batch", "100000"]].concat(), "--batch", "100000"),
        ([&eval[..], &["--beams", "0"]].concat(), "--beams", "0"),
        ([&eval[..], &["--beams", "100000"]].concat(), "--beams", "100000"),
        ([&eval[..], &["--max-new-tokens", "0"]].concat(), "--max-new-tokens", "0"),
        ([&eval[..], &["--threads", "4000"]].concat(), "--threads", "4000"),
        ([&eval[..], &["--threads", "0"]].concat(), "--threads", "0"),
        ([&eval[..], &["--workers", "0"]].concat(), "--workers", "0"),
        ([&eval[..], &["--workers", "65"]].concat(), "--workers", "65"),
        ([&bench[..], &["--items", "0"]].concat(), "--items", "0"),
        ([&bench[..], &["--repeats", "0"]].concat(), "--repeats", "0"),
        ([&bench[..], &["--bench-batch", "0"]].concat(), "--bench-batch", "0"),
        ([&bench[..], &["--warmup", "100000"]].concat(), "--warmup", "100000"),
        ([&ask[..], &["--beams", "100000"]].concat(), "--beams", "100000"),
        ([&ask[..], &["--threads", "4000"]].concat(), "--threads", "4000"),
        (vec!["compare", "tiny", "--no-latency", "--out", out, "--repeats", "0"], "--repeats", "0"),
    ];
    for (args, flag, value) in cases {
        let (code, err) = lynx(&args);
        assert_eq!(code, 2, "{args:?} was accepted (exit {code}): {err}");
        assert!(err.contains(flag) && err.contains(&format!("'{value}'")), "{args:?}: {err}");
        assert!(err.contains("is not in"), "{args:?}: says the accepted range: {err}");
    }
    // Nothing was written for the refused runs (batch 0 used to be recorded in run.json).
    assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
}

#[test]
fn in_range_values_pass_the_parser() {
    // `--limit 1 --batch 1`: the smallest accepted values run.
    let t = tempfile::tempdir().unwrap();
    let bench = common::short_bench(t.path(), 3);
    let out = t.path().join("r");
    let (code, err) = lynx(&[
        "eval",
        "tiny",
        "--limit",
        "1",
        "--batch",
        "1",
        "--threads",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--bench",
        bench.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
}
