//! Hostile zoos (issue 14, gaps 2-6): unlisted external data, files swapped after verification,
//! numbers that would allocate without bound, sizes that disagree with the graphs, special files
//! and deep YAML. Each was a silent wrong answer, an abort or a hang before; each is now a named
//! error, and `list` reports a bad manifest beside the good ones.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use lynx_zoo::generate::GenerationOptions;
use lynx_zoo::manifest::paths::sha256_file;
use lynx_zoo::model::Model;
use lynx_zoo::runtime::RuntimeOptions;
use lynx_zoo::{Error, Media, Zoo};

use crate::common;

use common::{fixture, zoo_copy};

fn edit(root: &Path, name: &str, from: &str, to: &str) {
    let path = root.join("variants").join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "`{from}` is not in {name}.yaml");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn lynx_zoo(args: &[&str]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_lynx-zoo")).args(args).output().unwrap();
    (out, start.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn corrupt(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    for b in bytes.iter_mut().skip(64).step_by(4) {
        *b ^= 0x5a;
    }
    std::fs::write(path, bytes).unwrap();
}

const DECODER_DATA: &str =
    "    external_data:\n    - path: onnx/tiny-decoder.data\n      sha256: 35fdad1b9d2369c5d6010ec820c8db2015d1c32a046444b54ab2afc46c885e42\n";

#[test]
fn external_data_the_manifest_does_not_list_is_refused() {
    let (_d, root) = zoo_copy();
    edit(&root, "tiny", DECODER_DATA, "    external_data: []\n");
    corrupt(&root.join("onnx/tiny-decoder.data"));
    let zoo = Zoo::open(&root).unwrap();
    for result in
        [zoo.check("tiny", &RuntimeOptions::new()).map(|_| ()), zoo.load("tiny", &RuntimeOptions::new()).map(|_| ())]
    {
        match result {
            Err(Error::ExternalData { graph, message, .. }) => {
                assert_eq!(graph, "decoder");
                assert!(message.contains("`tiny-decoder.data`"), "{message}");
                assert!(message.contains("`graphs.decoder.external_data` does not list"), "{message}");
            }
            other => panic!("expected an unlisted external-data error, got {other:?}"),
        }
    }
}

#[test]
fn sessions_run_the_verified_bytes_not_what_is_on_disk_later() {
    let (_d, root) = zoo_copy();
    let zoo = Zoo::open(&root).unwrap();
    let image = Media::image(fixture().join("media/scene.png"));
    let options = GenerationOptions::greedy(6);
    let clean = zoo.load("tiny", &RuntimeOptions::new()).unwrap().ask(&image, "what colour?", &options).unwrap();

    // Verified, then the weights are swapped on disk before the sessions exist.
    let manifest = zoo.manifest("tiny").unwrap();
    let files = zoo.read_verified(&manifest).unwrap();
    corrupt(&root.join("onnx/tiny-decoder.data"));
    corrupt(&root.join("onnx/tiny-decoder.onnx"));
    corrupt(&root.join("onnx/tokenizer.json"));
    let mut model = Model::from_verified(manifest, &files, &RuntimeOptions::new()).unwrap();
    let after = model.ask(&image, "what colour?", &options).unwrap();
    assert_eq!(after.tokens, clean.tokens);
    // A fresh load sees the swap.
    assert!(matches!(zoo.load("tiny", &RuntimeOptions::new()), Err(Error::Checksum { .. })));
}

#[test]
fn numbers_past_their_bounds_are_named_errors_and_list_goes_on() {
    for (from, to, field) in [
        ("  layers: 2\n", "  layers: 1000000000\n", "model.layers"),
        ("  resolution: 16\n", "  resolution: 100000\n", "axes.resolution"),
        ("  frames: 2\n", "  frames: 1000000000\n", "axes.frames"),
        ("  visual_tokens: 3\n", "  visual_tokens: 1000000000\n", "axes.visual_tokens"),
        ("  vocab_size: 300\n", "  vocab_size: 4000000000\n", "model.vocab_size"),
    ] {
        let (_d, root) = zoo_copy();
        edit(&root, "tiny", from, to);
        let zoo = root.to_str().unwrap();
        let (check, took) = lynx_zoo(&["check", "tiny", "--zoo", zoo]);
        let said = format!("{}{}", String::from_utf8_lossy(&check.stdout), stderr(&check));
        assert_eq!(check.status.code(), Some(1), "{to}: {said}");
        assert!(said.contains(&format!("field `{field}`")) && said.contains("over the bound"), "{to}: {said}");
        assert!(took < Duration::from_secs(20));
        let (list, _) = lynx_zoo(&["list", "--zoo", zoo]);
        let table = String::from_utf8_lossy(&list.stdout);
        assert!(table.contains("tiny-blind") && table.contains("tiny-xattn"), "{table}");
        assert!(stderr(&list).contains(&format!("field `{field}`")), "{}", stderr(&list));
        assert_eq!(list.status.code(), Some(1));
    }
}

#[test]
fn sizes_that_disagree_with_the_graphs_fail_check() {
    // The resolution against a graph fixed at 16.
    let (_d, root) = zoo_copy();
    edit(&root, "tiny", "  resolution: 16\n", "  resolution: 32\n");
    edit(&root, "tiny", "  size: 16\n", "  size: 32\n");
    let err = Zoo::open(&root).unwrap().manifest("tiny").unwrap_err().to_string();
    assert!(
        err.contains("graphs.vision.inputs.pixel_values.shape") && err.contains("`axes.resolution` is `32`"),
        "{err}"
    );

    // Hidden size against the embeddings' width.
    let (_d, root) = zoo_copy();
    edit(&root, "tiny", "  hidden: 16\n", "  hidden: 24\n");
    let err = Zoo::open(&root).unwrap().manifest("tiny").unwrap_err().to_string();
    assert!(err.contains("`model.hidden` is `24`"), "{err}");

    // A 301-token tokenizer against `vocab_size: 300`: `check` refuses what `load` refuses.
    let (_d, root) = zoo_copy();
    let tok = root.join("onnx/tokenizer.json");
    let old = sha256_file(&tok).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&tok).unwrap()).unwrap();
    json["added_tokens"].as_array_mut().unwrap().push(serde_json::json!({
        "id": 300, "content": "<extra>", "single_word": false, "lstrip": false, "rstrip": false,
        "normalized": false, "special": true
    }));
    std::fs::write(&tok, serde_json::to_vec(&json).unwrap()).unwrap();
    edit(&root, "tiny", &old, &sha256_file(&tok).unwrap());
    let zoo = Zoo::open(&root).unwrap();
    let check = zoo.check("tiny", &RuntimeOptions::new()).unwrap_err().to_string();
    assert!(check.contains("has 301 tokens but the manifest's `model.vocab_size` is 300"), "{check}");
}

#[cfg(unix)]
#[test]
fn special_files_and_links_out_of_the_zoo_are_refused_without_hanging() {
    let (dir, root) = zoo_copy();
    let variants = root.join("variants");
    let fifo = std::ffi::CString::new(variants.join("fifo.yaml").into_os_string().into_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/dev/zero", variants.join("zero.yaml")).unwrap();
    let outside = dir.path().join("outside.yaml");
    std::fs::copy(variants.join("tiny.yaml"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, variants.join("escape.yaml")).unwrap();

    let (list, took) = lynx_zoo(&["list", "--zoo", root.to_str().unwrap()]);
    assert!(took < Duration::from_secs(20), "list took {took:?}");
    let err = stderr(&list);
    assert!(err.contains("fifo.yaml") && err.contains("not a regular file"), "{err}");
    // A link to /dev/zero is refused as leaving the zoo (and would be as not a regular file).
    assert!(err.contains("zero.yaml`: is a link to `/dev/zero`"), "{err}");
    assert!(err.contains("escape.yaml") && err.contains("outside the zoo"), "{err}");
    assert!(String::from_utf8_lossy(&list.stdout).contains("tiny-xattn"));
}

#[test]
fn deep_yaml_is_refused_at_once() {
    let (_d, root) = zoo_copy();
    let deep = format!("schema_version: 1\nname: deep\nx: {}1{}\n", "[".repeat(200_000), "]".repeat(200_000));
    std::fs::write(root.join("variants/deep.yaml"), deep).unwrap();
    let start = Instant::now();
    let err = Zoo::open(&root).unwrap().manifest("deep").unwrap_err().to_string();
    assert!(err.contains("nested more than 64 levels"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn nan_weights_with_a_valid_checksum_stop_generation_with_a_named_error() {
    let (_d, root) = zoo_copy();
    let data = root.join("onnx/tiny-decoder.data");
    let old = sha256_file(&data).unwrap();
    let len = std::fs::metadata(&data).unwrap().len() as usize;
    std::fs::write(&data, f32::NAN.to_le_bytes().repeat(len / 4)).unwrap();
    edit(&root, "tiny", &old, &sha256_file(&data).unwrap());
    let mut model = Zoo::open(&root).unwrap().load("tiny", &RuntimeOptions::new()).unwrap();
    let image = Media::image(fixture().join("media/scene.png"));
    match model.ask(&image, "what colour?", &GenerationOptions::greedy(4)) {
        Err(Error::NonFiniteLogits { graph, tensor, step, .. }) => {
            assert_eq!((graph.as_str(), tensor.as_str(), step), ("decoder", "logits", 0));
        }
        other => panic!("expected a non-finite logits error, got {other:?}"),
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_as_benchmark_or_predictions_is_refused_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.jsonl");
    let c = std::ffi::CString::new(fifo.clone().into_os_string().into_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let bench = common::repo().join("data/test/annotations.jsonl");
    let (f, b) = (fifo.to_str().unwrap(), bench.to_str().unwrap());
    for args in [["data", "score", "--bench", f, b], ["data", "score", "--bench", b, f]] {
        let (out, took) = lynx_zoo(&args);
        assert!(took < Duration::from_secs(20), "{args:?} took {took:?}");
        let err = stderr(&out);
        assert!(err.contains("fifo.jsonl") && err.contains("not a regular file (a FIFO)"), "{args:?}: {err}");
    }
}
