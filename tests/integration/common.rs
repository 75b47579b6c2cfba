//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A benchmark of `n` short questions over two committed test images and one clip (the fixture
/// variants have a 48-position context).
pub fn short_bench(dir: &Path, n: usize) -> PathBuf {
    let media = dir.join("m");
    fs::create_dir_all(media.join("v")).unwrap();
    let test = repo().join("data/test");
    fs::copy(test.join("images/000000.png"), media.join("a.png")).unwrap();
    fs::copy(test.join("images/000003.png"), media.join("b.png")).unwrap();
    for e in fs::read_dir(test.join("videos/000008")).unwrap() {
        let p = e.unwrap().path();
        fs::copy(&p, media.join("v").join(p.file_name().unwrap())).unwrap();
    }
    let mut text = String::new();
    for i in 0..n {
        let (key, path, q, a, class) = [
            ("image", "m/a.png", "What shape?", "square", "object"),
            ("image", "m/b.png", "How many?", "5", "counting"),
            ("video", "m/v", "Which way?", "right", "motion"),
        ][i % 3];
        let ins = if i % 2 == 1 { "\"one_word\"" } else { "null" };
        text.push_str(&format!(
            "{{\"dataset\":\"t\",\"question\":\"{q}\",\"answer\":[\"{a}\"],\"index\":{i},\"{key}\":\"{path}\",\"class\":\"{class}\",\"instruction\":{ins}}}\n"
        ));
    }
    let p = dir.join("ann.jsonl");
    fs::write(&p, text).unwrap();
    p
}

/// The runtime fixtures (`tests/fixtures/runtime`: a tiny zoo and media).
pub fn fixture() -> PathBuf {
    repo().join("tests/fixtures/runtime")
}

/// Copies the folder `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A writable copy of the fixture zoo: (the temporary folder, the zoo in it).
pub fn zoo_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("zoo");
    copy_dir(&fixture().join("zoo"), &root);
    (dir, root)
}
