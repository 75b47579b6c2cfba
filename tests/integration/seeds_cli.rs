//! Seed replicates (`seed_of`): `check` holds them to their variant's axes, and `compare` folds
//! them into one row with the spread over seeds.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            fs::copy(&p, &dest).unwrap();
        }
    }
}

fn bin(zoo: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lynx-zoo"));
    c.env("LYNX_ZOO_DIR", zoo);
    c
}

#[test]
fn replicates_are_checked_and_folded_into_their_variant() {
    let t = tempfile::tempdir().unwrap();
    let zoo = t.path().join("zoo");
    copy_dir(&repo().join("tests/fixtures/runtime/zoo"), &zoo);
    let tiny = fs::read_to_string(zoo.join("variants/tiny.yaml")).unwrap();
    let replicate = tiny.replacen("name: tiny\n", "name: tiny-s2\nseed_of: tiny\n", 1).replacen(
        "  seed: 1234\n",
        "  seed: 99\n",
        1,
    );
    assert!(replicate.contains("seed_of: tiny") && replicate.contains("seed: 99"));
    fs::write(zoo.join("variants/tiny-s2.yaml"), &replicate).unwrap();
    let o = bin(&zoo).args(["check", "tiny-s2"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    // Another frame count is another variant, not a replicate.
    fs::write(
        zoo.join("variants/tiny-s2.yaml"),
        replicate.replacen("frame_positions: true", "frame_positions: false", 1),
    )
    .unwrap();
    let o = bin(&zoo).args(["check", "tiny-s2"]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && text.contains("seed_of") && text.contains("other axes"), "{text}");
    fs::write(zoo.join("variants/tiny-s2.yaml"), &replicate).unwrap();

    // compare: two rows (tiny with two seeds, tiny-xattn) and the floor; the replicate is no row.
    let ann = t.path().join("ann.jsonl");
    let media = repo().join("data/test/images/000000.png");
    fs::copy(&media, t.path().join("a.png")).unwrap();
    let lines: String = (0..6)
        .map(|i| format!("{{\"dataset\":\"t\",\"question\":\"What shape?\",\"answer\":[\"square\"],\"index\":{i},\"image\":\"a.png\",\"class\":\"object\"}}\n"))
        .collect();
    fs::write(&ann, lines).unwrap();
    let o = bin(&zoo)
        .args(["compare", "tiny", "tiny-s2", "tiny-xattn", "--no-latency", "--format", "json", "--bench"])
        .arg(&ann)
        .arg("--out")
        .arg(t.path().join("r"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["variant"].as_str().unwrap()).collect();
    assert_eq!(names, ["tiny", "tiny-xattn", "majority floor"]);
    assert_eq!(rows[0]["seeds"], 2);
    assert!(rows[0]["seed_sd_pts"].is_number() && rows[1]["seeds"] == 1);
}
