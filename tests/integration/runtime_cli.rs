//! `lynx-zoo list | show | check | ask` on the fixture zoo, through the binary.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runtime")
}

fn lynx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lynx-zoo"))
        .args(args)
        .env("LYNX_ZOO_DIR", fixture().join("zoo"))
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn list_json_is_an_array_of_variants_with_axes() {
    let o = lynx(&["list", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let names: Vec<&str> = v.as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["tiny", "tiny-blind", "tiny-xattn"]);
    assert_eq!(v[2]["axes"]["connector"]["kind"], "cross_attention");
    assert_eq!(v[1]["axes"]["vision_input"], false);
    let table = lynx(&["list"]);
    assert!(table.status.success());
    assert!(stdout(&table).contains("cross_attention/2"));
}

#[test]
fn show_prints_graphs_and_tensors() {
    let o = lynx(&["show", "tiny-xattn"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("cross_key_values.1.key float32 [batch, 2, memory, 8]"), "{out}");
    let yaml = lynx(&["show", "tiny", "--format", "yaml"]);
    assert!(stdout(&yaml).starts_with("schema_version: 1\nname: tiny\n"));
}

#[test]
fn check_passes_every_fixture_variant() {
    let o = lynx(&["check"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o).lines().filter(|l| l.starts_with("ok ")).count(), 3);
}

#[test]
fn ask_answers_like_the_reference() {
    // The manifest's default decoding is greedy over 8 tokens, as the goldens; the image goes
    // through the Rust preprocessing here, so this checks the whole path from a PNG file.
    let goldens: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("zoo/onnx/goldens/tiny.json")).unwrap()).unwrap();
    let item = &goldens["items"][0];
    let image = fixture().join("media/scene.png");
    let o =
        lynx(&["ask", "tiny", "--image", image.to_str().unwrap(), "--question", item["question"].as_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim_end_matches('\n'), item["greedy_text"].as_str().unwrap().trim());
    // spinning threads change how ONNX Runtime waits, never what it computes
    let question = item["question"].as_str().unwrap();
    let o =
        lynx(&["ask", "tiny", "--image", image.to_str().unwrap(), "--question", question, "--spin", "--threads", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim_end_matches('\n'), item["greedy_text"].as_str().unwrap().trim());

    let o = lynx(&[
        "ask",
        "tiny",
        "--image",
        image.to_str().unwrap(),
        "--question",
        "what?",
        "--beams",
        "3",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["provider"], "cpu");
    assert_eq!(v["strategy"], "beam");
    let t = &v["timings_ms"];
    assert!(t["total"].as_f64().unwrap() > 0.0);
    // every stage of the item has its timer, and together they make up the total
    let stages = ["preprocess", "vision", "connector", "tokenize", "prefill", "decode", "select", "detokenize"];
    let sum: f64 = stages.iter().map(|k| t[*k].as_f64().unwrap_or_else(|| panic!("no `{k}` in {t}"))).sum();
    for k in ["tokenize", "select", "detokenize"] {
        assert!(t[k].as_f64().unwrap() > 0.0, "{k} was not timed: {t}");
    }
    let unaccounted = t["unaccounted"].as_f64().unwrap();
    assert!(sum <= t["total"].as_f64().unwrap() + 1e-6, "{t}");
    assert!((t["total"].as_f64().unwrap() - sum - unaccounted).abs() < 1e-3, "{t}");
    // ONNX Runtime's own time lies within the graph stages; the rest of the total is ours
    let ort = t["onnx_runtime"].as_f64().unwrap();
    let graph_stages: f64 = ["vision", "connector", "prefill", "decode"].iter().map(|k| t[*k].as_f64().unwrap()).sum();
    assert!(ort > 0.0 && ort <= graph_stages + 1e-6, "{t}");
    assert!((t["total"].as_f64().unwrap() - ort - t["outside_onnx_runtime"].as_f64().unwrap()).abs() < 1e-3, "{t}");
}

#[test]
fn errors_exit_non_zero_with_a_message() {
    let image = fixture().join("media/scene.png");
    let image = image.to_str().unwrap();
    let o = lynx(&["ask", "tiny-xatn", "--image", image, "--question", "q"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("similar: `tiny-xattn`"), "{}", stderr(&o));

    let o = lynx(&["ask", "tiny", "--question", "q"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--image PATH or --video PATH"), "{}", stderr(&o));

    let o = lynx(&["ask", "tiny", "--image", image, "--question", ""]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid question"), "{}", stderr(&o));

    if !cfg!(feature = "cuda") {
        let o = lynx(&["ask", "tiny", "--image", image, "--question", "q", "--ep", "cuda"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("lacks CUDA"), "{}", stderr(&o));
    }
}

#[test]
fn missing_onnx_runtime_names_the_fix() {
    let o = Command::new(env!("CARGO_BIN_EXE_lynx-zoo"))
        .args(["check"])
        .env("LYNX_ZOO_DIR", fixture().join("zoo"))
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .env("LYNX_ZOO_ORT_CACHE", "/nonexistent-cache")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("bash scripts/setup-ort") && err.contains("/nonexistent/libonnxruntime.so"), "{err}");
}

/// Runs `lynx-zoo ARGS`, killing it after `secs` seconds; `None` when it had to be killed.
fn lynx_within(args: &[&str], secs: u64) -> Option<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lynx-zoo"))
        .args(args)
        .env("LYNX_ZOO_DIR", fixture().join("zoo"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed().as_secs() >= secs {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some(child.wait_with_output().unwrap())
}

#[cfg(unix)]
#[test]
fn a_fifo_as_image_or_video_is_refused_not_read() {
    let t = tempfile::tempdir().unwrap();
    let fifo = t.path().join("pipe.png");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let f = fifo.to_str().unwrap();
    for flag in ["--image", "--video"] {
        let o = lynx_within(&["ask", "tiny", flag, f, "--question", "What shape?"], 20)
            .unwrap_or_else(|| panic!("`ask {flag} FIFO` hangs"));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("pipe.png") && err.contains("not a regular file"), "{flag}: {err}");
    }
}
