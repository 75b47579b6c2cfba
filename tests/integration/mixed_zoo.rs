//! An imported variant is a first-class variant (issue 15, item 4): in one zoo with the zoo's own
//! variants, every command -- `list`, `show`, `check`, `ask`, `eval`, `bench`, `compare`, `report`
//! -- runs on it through the binary, beside them and against them.
//!
//! The mixed zoo: the runtime fixture zoo's own variants (`tiny`, the text-only `tiny-blind`,
//! the cross-attention `tiny-xattn`) and the open fixture zoo's imported `llava-tiny` (an image
//! placeholder in its template, a projector, a grouped-query-attention decoder without
//! `position_ids`, no recipe axes), whose files sit in `onnx/llava-tiny/` as an importer lays them
//! out. Every number asserted is computed for both kinds of variant.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lynx_zoo::generate::GenerationOptions;
use lynx_zoo::{Media, RuntimeOptions, Zoo};
use serde_json::Value as Json;

use crate::common;
use common::{copy_dir, fixture, short_bench};

const IMPORTED: &str = "llava-tiny";
const OWN: [&str; 3] = ["tiny", "tiny-blind", "tiny-xattn"];

/// The mixed zoo in a temporary folder: (the folder, the zoo root in it).
fn mixed_zoo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("zoo");
    copy_dir(&fixture().join("zoo"), &root);
    copy_dir(&fixture().join("open-zoo/onnx"), &root.join("onnx/llava-tiny"));
    // Only paths move: every checksum stays the open zoo's.
    let manifest = fs::read_to_string(fixture().join("open-zoo/variants/llava-tiny.yaml")).unwrap();
    let moved = manifest.replace("path: onnx/", "path: onnx/llava-tiny/");
    assert_eq!(moved.matches("onnx/llava-tiny/").count(), 6, "4 graphs, the tokenizer and the goldens");
    fs::write(root.join("variants/llava-tiny.yaml"), moved).unwrap();
    (dir, root)
}

fn run(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lynx-zoo"))
        .args(args)
        .env("LYNX_ZOO_DIR", root)
        .env("LYNX_ZOO_LOG", "warn")
        .output()
        .unwrap()
}

/// Runs `lynx-zoo ARGS` on the zoo; it must succeed without a panic. Returns stdout.
fn ok(root: &Path, args: &[&str]) -> String {
    let out = run(root, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `lynx-zoo ARGS`, which must fail with exit 1 and a message (no panic). Returns stderr.
fn fails(root: &Path, args: &[&str]) -> String {
    let out = run(root, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    stderr
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The JSON records of `rows` whose `variant` is `name`.
fn record<'a>(rows: &'a Json, name: &str) -> &'a Json {
    rows.as_array().unwrap().iter().find(|r| r["variant"] == name).unwrap_or_else(|| panic!("no row {name}: {rows}"))
}

#[test]
fn list_show_and_check_treat_the_import_as_a_variant_beside_the_zoos_own() {
    let (_t, root) = mixed_zoo();
    let list = ok(&root, &["list"]);
    let row = |name: &str| -> Vec<String> {
        let line = list.lines().find(|l| l.split_whitespace().next() == Some(name));
        line.unwrap_or_else(|| panic!("no row {name}:\n{list}")).split_whitespace().map(String::from).collect()
    };
    // name, connector, backbone, adapter, freeze, res, tokens, frames, vision, params, changes
    let imported = row(IMPORTED);
    assert_eq!(
        strs(&imported),
        ["llava-tiny", "projector", "gpt2-gqa-tiny", "-", "-", "16", "4", "2", "picture", "0.01M", "(imported)"],
        "{list}"
    );
    assert_eq!(row("tiny").last().map(String::as_str), Some("(baseline)"), "{list}");
    assert_eq!(row("tiny-blind")[8], "none", "{list}");
    assert!(row("tiny-xattn")[1].starts_with("cross_attention/"), "{list}");
    let json: Json = serde_json::from_str(&ok(&root, &["list", "--format", "json"])).unwrap();
    let entries = json.as_array().unwrap();
    let entry = |name: &str| entries.iter().find(|e| e["name"] == name).unwrap_or_else(|| panic!("{name}: {json}"));
    assert_eq!(entries.len(), 4);
    let entry_imported = entry(IMPORTED);
    assert_eq!(entry_imported["origin"]["kind"], "imported");
    assert_eq!(entry_imported["origin"]["source"], "tests/fixtures/runtime/make_zoo.py (llava-tiny)");
    assert!(entry_imported["axes"].get("freeze").is_none() && entry_imported["changes"].is_null());
    for name in OWN {
        let e = entry(name);
        assert_eq!(e["origin"]["kind"], "zoo", "{name}");
        assert!(e["axes"]["freeze"].is_object(), "{name}");
    }

    let show = ok(&root, &["show", IMPORTED]);
    assert!(show.contains("origin:  imported from tests/fixtures/runtime/make_zoo.py (llava-tiny) (revision not recorded; config sha256 d0642ea2"), "{show}");
    assert!(show.contains("(not recorded: backbone.flavour, adapter, freeze, data, prompts, quantization)"), "{show}");
    assert!(show.contains("onnx/llava-tiny/decoder-gqa.onnx") && show.contains("heads 2 (kv 1)"), "{show}");
    let tiny = ok(&root, &["show", "tiny"]);
    assert!(!tiny.contains("origin:") && !tiny.contains("not recorded"), "{tiny}");

    let check = ok(&root, &["check"]);
    let lines: Vec<&str> = check.lines().collect();
    assert_eq!(lines.len(), 4, "{check}");
    for name in OWN.iter().chain([&IMPORTED]) {
        assert!(
            lines.iter().any(|l| l.starts_with("ok ") && l.split_whitespace().nth(1) == Some(name)),
            "{name}: {check}"
        );
    }
    let line = lines.iter().find(|l| l.contains(IMPORTED)).unwrap();
    assert!(line.contains("graphs vision, connector, embed, decoder match; vocab 300"), "{line}");

    // Clear errors, with the imported name suggested.
    let e = fails(&root, &["show", "llava-tiyn"]);
    assert!(e.contains("no variant `llava-tiyn`") && e.contains("`llava-tiny`"), "{e}");
}

#[test]
fn ask_answers_with_the_import_as_the_library_does_beside_a_zoo_variant() {
    let (_t, root) = mixed_zoo();
    let image = fixture().join("media/scene.png");
    let clip = fixture().join("media/clip");
    let q = "what colour is the block?";
    let zoo = Zoo::open(&root).unwrap();
    let opts = RuntimeOptions::new().with_intra_threads(1).unwrap();
    for (name, media) in
        [(IMPORTED, Media::image(&image)), (IMPORTED, Media::video(&clip)), ("tiny", Media::image(&image))]
    {
        let mut model = zoo.load(name, &opts).unwrap();
        let want = model.ask(&media, q, &model.default_generation()).unwrap();
        let flag = if matches!(media, Media::Video(_)) { "--video" } else { "--image" };
        let path = match &media {
            Media::Image(p) | Media::Video(p) => p.to_str().unwrap().to_string(),
            _ => unreachable!(),
        };
        let out = ok(&root, &["ask", name, flag, &path, "--question", q, "--format", "json", "--threads", "1"]);
        let got: Json = serde_json::from_str(&out).unwrap();
        assert_eq!(got["variant"], name);
        assert_eq!(got["tokens"], serde_json::json!(want.tokens), "{name} {flag}: {out}");
        assert_eq!(got["answer"], want.text.as_str());
        assert_eq!(got["strategy"], "greedy", "{name}: the manifests' defaults are greedy");
    }
    // The same answer on the open zoo the import came from: moving its files changed nothing.
    let mut origin = Zoo::open(fixture().join("open-zoo")).unwrap().load(IMPORTED, &opts).unwrap();
    let mut moved = zoo.load(IMPORTED, &opts).unwrap();
    let g = GenerationOptions::greedy(8);
    let media = Media::image(&image);
    assert_eq!(origin.ask(&media, q, &g).unwrap().tokens, moved.ask(&media, q, &g).unwrap().tokens);

    let e = fails(&root, &["ask", IMPORTED, "--question", q]);
    assert!(e.contains("`llava-tiny` looks at an image or a video: pass --image PATH or --video PATH"), "{e}");
}

#[test]
fn eval_bench_compare_and_report_run_a_mixed_comparison() {
    let (t, root) = mixed_zoo();
    let bench = short_bench(t.path(), 6);
    let out = t.path().join("results");
    let (b, o) = (bench.to_str().unwrap(), out.to_str().unwrap());
    let common = ["--bench", b, "--out", o, "--max-new-tokens", "4", "--threads", "1"];
    let with = |args: &[&str]| -> Vec<String> { args.iter().chain(&common).map(|s| s.to_string()).collect() };
    let timing = ["--items", "1", "--repeats", "1", "--warmup", "0", "--bench-batch", "2"];

    // eval: the import and a zoo variant, each with its image-swap control.
    let evals = ok(&root, &strs(&with(&["eval", "tiny", IMPORTED, "--image-swap"])));
    for name in ["tiny", IMPORTED] {
        for (line, dir) in [
            (format!("{name}: accuracy "), name.to_string()),
            (format!("{name} (image swap): accuracy "), format!("{name}/control-image-swap")),
        ] {
            assert!(evals.lines().any(|l| l.starts_with(&line) && l.contains("on 6 items")), "{line}: {evals}");
            let preds = fs::read_to_string(out.join(dir).join("predictions.jsonl")).unwrap();
            assert_eq!(preds.lines().count(), 6, "{name}");
        }
    }

    // bench: both timed in one interleaved run.
    let mut args = with(&["bench", IMPORTED, "tiny", "--format", "json"]);
    args.extend(timing.iter().map(|s| s.to_string()));
    let rows: Json = serde_json::from_str(&ok(&root, &strs(&args))).unwrap();
    let run_id = record(&rows, IMPORTED)["run_id"].clone();
    for name in [IMPORTED, "tiny"] {
        let r = record(&rows, name);
        assert!(r["e2e_ms_mean"].as_f64().unwrap() > 0.0 && r["vision_ms_p50"].as_f64().unwrap() > 0.0, "{r}");
        // lynx-zoo's own share: some, and less than the whole item
        let outside = r["outside_ort_ms_mean"].as_f64().unwrap();
        assert!(outside > 0.0 && outside < r["e2e_ms_mean"].as_f64().unwrap(), "{r}");
        assert_eq!(r["run_id"], run_id);
        assert!(out.join(name).join("latency.json").exists());
    }

    // compare: the whole mixed zoo, accuracy and latency for both kinds.
    let mut args = with(&["compare", "--baseline", "tiny", "--format", "json", "--table", "all"]);
    args.extend(timing.iter().map(|s| s.to_string()));
    let all: Json = serde_json::from_str(&ok(&root, &strs(&args))).unwrap();
    let acc = &all["accuracy"];
    let names: Vec<&str> = acc.as_array().unwrap().iter().map(|r| r["variant"].as_str().unwrap()).collect();
    assert_eq!(names, ["llava-tiny", "tiny", "tiny-blind", "tiny-xattn", "majority floor"], "the zoo's order");
    let imp = record(acc, IMPORTED);
    assert_eq!((imp["origin"].as_str(), imp["role"].as_str()), (Some("imported"), Some("variant")), "{imp}");
    assert_eq!(imp["source"], "tests/fixtures/runtime/make_zoo.py (llava-tiny)");
    assert!(imp["changes"].is_null());
    for name in [IMPORTED, "tiny-xattn", "tiny-blind"] {
        let r = record(acc, name);
        for key in ["accuracy_pct", "delta_pts", "p_value", "p_holm", "q_bh"] {
            assert!(r[key].is_number(), "{name}.{key}: {r}");
        }
        assert_eq!(r["n_items"], 6);
    }
    assert_eq!(record(acc, "tiny")["role"], "baseline");
    assert!(imp["vision_reliance_pts"].is_number(), "the import's image swap ran: {imp}");
    assert_eq!(record(acc, "tiny-blind")["role"], "blind");
    assert_eq!(record(acc, "tiny")["origin"], "zoo");
    assert!(record(acc, "majority floor")["origin"].is_null());
    for name in [IMPORTED, "tiny", "tiny-blind", "tiny-xattn"] {
        let p = record(&all["pareto"], name);
        assert!(p["e2e_ms_mean"].as_f64().unwrap() > 0.0 && p["accuracy_pct"].is_number(), "{p}");
        assert!(p["pareto"].is_boolean());
        assert_eq!(p["origin"], if name == IMPORTED { "imported" } else { "zoo" });
        assert!(record(&all["latency"], name)["prefill_ms_p50"].as_f64().unwrap() > 0.0);
    }
    assert!(out.join("comparison.json").exists(), "the whole zoo on the whole benchmark");
    // The terminal table marks the import.
    let mut args = with(&["compare", "--baseline", "tiny", "--no-latency", "--table", "accuracy"]);
    args.extend(timing.iter().map(|s| s.to_string()));
    let table = ok(&root, &strs(&args));
    let line = table.lines().find(|l| l.contains(IMPORTED)).unwrap();
    assert!(line.contains("(imported)"), "{table}");
    assert!(table.contains("tiny (baseline)") && table.contains("(imported): a model made elsewhere"), "{table}");

    // The import as the baseline: the zoo's variants are tested against it.
    let args = with(&["compare", "tiny", IMPORTED, "--baseline", IMPORTED, "--no-latency", "--format", "json"]);
    let rows: Json = serde_json::from_str(&ok(&root, &strs(&args))).unwrap();
    assert_eq!(record(&rows, IMPORTED)["role"], "baseline");
    assert!(record(&rows, IMPORTED)["delta_pts"].is_null());
    let d = record(&rows, "tiny")["delta_pts"].as_f64().unwrap();
    let own = |name: &str| record(acc, name)["accuracy_pct"].as_f64().unwrap();
    assert!((d - (own("tiny") - own(IMPORTED))).abs() < 1e-9, "Δ = tiny - llava-tiny: {d}");

    // report: the Markdown section and the plot name the import.
    let doc = t.path().join("results.md");
    fs::write(&doc, "# Results\n\nkept\n\n<!-- report:begin -->\n<!-- report:end -->\n").unwrap();
    let plot = t.path().join("plot.svg");
    let (d, p) = (doc.to_str().unwrap(), plot.to_str().unwrap());
    ok(&root, &["report", "--results", o, "--out", d, "--plot", p, "--baseline", "tiny"]);
    let md = fs::read_to_string(&doc).unwrap();
    assert!(md.starts_with("# Results\n\nkept\n"), "{md}");
    let accuracy_row = md.lines().find(|l| l.starts_with(&format!("| {IMPORTED} |"))).unwrap();
    assert!(accuracy_row.contains("| (imported) |"), "{md}");
    assert!(
        md.contains("### Imported variants")
            && md.contains("| llava-tiny | tests/fixtures/runtime/make_zoo.py (llava-tiny) | not recorded |"),
        "{md}"
    );
    assert!(fs::read_to_string(&plot).unwrap().contains(IMPORTED));
    // Without --baseline: no `lynx` here, so the first variant, the import.
    ok(&root, &["report", "--results", o, "--out", d, "--plot", p]);
    let md = fs::read_to_string(&doc).unwrap();
    assert!(md.contains("Accuracy (baseline `llava-tiny`)") && md.contains("llava-tiny (baseline)"), "{md}");

    let e = fails(&root, &strs(&with(&["compare", "tiny", IMPORTED, "--baseline", "llava", "--no-latency"])));
    assert!(e.contains("baseline `llava` is not among the compared variants (tiny, llava-tiny)"), "{e}");
}
