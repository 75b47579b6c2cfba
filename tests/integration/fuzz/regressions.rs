//! Inputs kept from fuzzing (tests/integration/fuzz.rs), each as a named test of what it must do now.
//!
//! The fuzz targets have found no panic and no case over their time limit so far (see "Fuzzing" in
//! docs/architecture.md for the runs). Kept here: hand-made edge inputs of the kinds the mutator
//! aims at, so that a regression shows up by name rather than by chance, and one open finding
//! from writing them (deep YAML nesting, ignored until fixed where it belongs).

use std::time::{Duration, Instant};

use lynx_zoo::manifest::Manifest;

/// YAML aliases that expand exponentially ("billion laughs"): refused or parsed, fast, no panic.
#[test]
fn an_alias_bomb_manifest_is_answered_quickly() {
    let t = tempfile::tempdir().unwrap();
    let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        yaml.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n",
            p = i - 1
        ));
    }
    yaml.push_str("name: bomb\n");
    let file = t.path().join("bomb.yaml");
    std::fs::write(&file, yaml).unwrap();
    let started = Instant::now();
    let out = Manifest::from_file(&file, t.path());
    assert!(out.is_err(), "an alias bomb is not a manifest");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

/// JSONL nested deeper than any parser's stack: an error with its line, not a stack overflow.
#[test]
fn deeply_nested_jsonl_is_an_error_with_its_line() {
    let t = tempfile::tempdir().unwrap();
    let ann = t.path().join("ann.jsonl");
    std::fs::write(&ann, format!("{}\n", "[".repeat(100_000))).unwrap();
    let started = Instant::now();
    let e = lynx_zoo::benchmark::Benchmark::load(&ann).unwrap_err().to_string();
    assert!(e.contains("ann.jsonl:1"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

/// FINDING (fixed): a manifest of deeply nested flow sequences took time quadratic in the depth
/// with serde_yaml 0.9 -- depth 10 000 (20 KB): 0.6 s, 40 000: 6.2 s, 100 000 (200 KB): about
/// 40 s. The manifest reader now bounds nesting before parsing (`manifest::yaml::check_nesting`).
#[test]
fn deep_manifest_nesting_is_refused_quickly() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("deep.yaml");
    std::fs::write(&file, format!("name: {}x{}\n", "[".repeat(100_000), "]".repeat(100_000))).unwrap();
    let started = Instant::now();
    assert!(Manifest::from_file(&file, t.path()).is_err());
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}
