//! Each bad input gets its own clear error: one test per kind, on a copy of the fixture zoo.

use std::path::Path;

use lynx_zoo::generate::GenerationOptions;
use lynx_zoo::runtime::{ExecutionProvider, RuntimeOptions};
use lynx_zoo::{Error, Media, Zoo};

use crate::common;

use common::{fixture, zoo_copy};

fn edit_manifest(root: &Path, name: &str, edit: impl FnOnce(String) -> String) {
    let path = root.join("variants").join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let new = edit(text.clone());
    assert_ne!(new, text, "the edit must change the manifest");
    std::fs::write(path, new).unwrap();
}

fn sha256(path: &Path) -> String {
    lynx_zoo::manifest::paths::sha256_file(path).unwrap()
}

fn load(root: &Path, name: &str) -> Result<lynx_zoo::Model, Error> {
    Zoo::open(root).unwrap().load(name, &RuntimeOptions::new())
}

#[test]
fn corrupt_onnx_is_a_load_error_naming_the_graph() {
    // Not protobuf at all: refused while reading its external-data references.
    let (_d, root) = zoo_copy();
    let file = root.join("onnx/tiny.connector.onnx");
    let old = sha256(&file);
    std::fs::write(&file, b"this is not a protobuf").unwrap();
    let new = sha256(&file);
    edit_manifest(&root, "tiny", |t| t.replace(&old, &new)); // the checksum is right; the file is not
    match load(&root, "tiny") {
        Err(Error::ExternalData { graph, path, message }) => {
            assert_eq!(graph, "connector");
            assert!(path.ends_with("onnx/tiny.connector.onnx"));
            assert!(message.contains("not a readable ONNX model"), "{message}");
        }
        other => panic!("expected an unreadable-model error, got {other:?}"),
    }
    // Well-formed protobuf (`ir_version: 8` and nothing else) that is no model: ONNX Runtime's error.
    std::fs::write(&file, [0x08, 0x08]).unwrap();
    let newer = sha256(&file);
    edit_manifest(&root, "tiny", |t| t.replace(&new, &newer));
    match load(&root, "tiny") {
        Err(e @ Error::Ort { .. }) => {
            let Error::Ort { graph, path, action, source } = &e else { unreachable!() };
            assert_eq!(graph, "connector");
            assert_eq!(*action, "to load it");
            assert!(path.ends_with("onnx/tiny.connector.onnx"));
            // ONNX Runtime's error is kept as the source, and the message still quotes it.
            let cause = std::error::Error::source(&e).expect("the ort error as source").to_string();
            assert!(!cause.is_empty() && cause == source.to_string() && e.to_string().ends_with(&cause), "{e}");
        }
        other => panic!("expected an ort load error, got {other:?}"),
    }
}

#[test]
fn checksum_mismatch_is_caught_before_any_session() {
    let (_d, root) = zoo_copy();
    let file = root.join("onnx/tiny-decoder.data");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let err = load(&root, "tiny").unwrap_err();
    match &err {
        Error::Checksum { path, expected, got } => {
            assert!(path.ends_with("onnx/tiny-decoder.data"));
            assert_ne!(expected, got);
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    // `check` reports the same thing.
    let zoo = Zoo::open(&root).unwrap();
    assert!(matches!(zoo.check("tiny-blind", &RuntimeOptions::new()), Err(Error::Checksum { .. })));
}

#[test]
fn declared_io_that_differs_from_the_graph_names_graph_and_tensor() {
    // a fixed dimension that differs: image_features is (batch, 4, 8), declared (batch, 5, 8) with
    // `model.patches: 5` (the manifest agrees with itself, not with the graph)
    let (_d, root) = zoo_copy();
    edit_manifest(&root, "tiny", |t| {
        t.replacen(
            "    - name: image_features\n      dtype: float32\n      shape:\n      - batch\n      - 4\n",
            "    - name: image_features\n      dtype: float32\n      shape:\n      - batch\n      - 5\n",
            1,
        )
        .replacen("      - frames\n      - 4\n", "      - frames\n      - 5\n", 1)
        .replacen("  patches: 4\n", "  patches: 5\n", 1)
    });
    match load(&root, "tiny") {
        Err(Error::GraphIo { graph, tensor, .. }) => {
            assert_eq!((graph.as_str(), tensor.as_str()), ("vision", "image_features"))
        }
        other => panic!("expected a graph I/O error, got {other:?}"),
    }
    // a tensor the graph does not have
    let (_d, root) = zoo_copy();
    edit_manifest(&root, "tiny-blind", |t| {
        t.replacen(
            "    - name: input_ids\n",
            "    - name: token_type_ids\n      dtype: int64\n      shape: [batch, seq]\n    - name: input_ids\n",
            1,
        )
    });
    match load(&root, "tiny-blind") {
        Err(e @ Error::GraphIo { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("graph `embed`") && msg.contains("token_type_ids"), "{msg}");
        }
        other => panic!("expected a graph I/O error, got {other:?}"),
    }
}

#[test]
fn paths_that_escape_the_zoo_are_rejected() {
    for bad in ["../outside.onnx", "/etc/passwd", "onnx/../../outside.onnx"] {
        let (_d, root) = zoo_copy();
        edit_manifest(&root, "tiny", |t| t.replacen("path: onnx/tiny-vision.onnx", &format!("path: {bad}"), 1));
        match Zoo::open(&root).unwrap().manifest("tiny") {
            Err(Error::PathEscape { field, path, .. }) => {
                assert_eq!(field, "graphs.vision.path");
                assert_eq!(path, bad);
            }
            other => panic!("{bad}: expected a path escape, got {other:?}"),
        }
    }
    // a symlink inside onnx/ that points outside the zoo
    let (d, root) = zoo_copy();
    let outside = d.path().join("outside.onnx");
    std::fs::copy(root.join("onnx/tiny-vision.onnx"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("onnx/link.onnx")).unwrap();
    edit_manifest(&root, "tiny", |t| t.replacen("path: onnx/tiny-vision.onnx", "path: onnx/link.onnx", 1));
    let err = Zoo::open(&root).unwrap().manifest("tiny").unwrap_err();
    assert!(matches!(err, Error::PathEscape { .. }), "{err:?}");
    assert!(err.to_string().contains("outside the zoo"), "{err}");
}

#[test]
fn malformed_yaml_is_a_syntax_error_naming_the_file() {
    let (_d, root) = zoo_copy();
    std::fs::write(root.join("variants/tiny.yaml"), "schema_version: 1\nname: \"tiny\naxes: {").unwrap();
    let err = Zoo::open(&root).unwrap().manifest("tiny").unwrap_err();
    match &err {
        Error::ManifestSyntax { path, message } => {
            assert!(path.ends_with("variants/tiny.yaml"));
            assert!(message.contains("line"), "{message}");
        }
        other => panic!("expected a YAML syntax error, got {other:?}"),
    }
}

#[test]
fn unknown_connector_kind_names_the_field() {
    let (_d, root) = zoo_copy();
    edit_manifest(&root, "tiny", |t| t.replacen("kind: resampler", "kind: qformer", 1));
    let err = Zoo::open(&root).unwrap().manifest("tiny").unwrap_err();
    match &err {
        Error::Manifest { field, message, .. } => {
            assert_eq!(field, "axes.connector.kind");
            assert!(message.contains("qformer") && message.contains("cross_attention"), "{message}");
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn inconsistent_manifests_name_the_field() {
    // a cross-attention variant without cross-attention layers
    let (_d, root) = zoo_copy();
    edit_manifest(&root, "tiny-xattn", |t| {
        t.replacen("  cross_attention_layers:\n  - 1\n", "  cross_attention_layers: []\n", 1)
    });
    match Zoo::open(&root).unwrap().manifest("tiny-xattn") {
        Err(Error::Manifest { field, .. }) => assert_eq!(field, "model.cross_attention_layers"),
        other => panic!("expected a schema error, got {other:?}"),
    }
    // a template without {question}
    let (_d, root) = zoo_copy();
    edit_manifest(&root, "tiny", |t| t.replacen("{question}", "{query}", 1));
    match Zoo::open(&root).unwrap().manifest("tiny") {
        Err(Error::Manifest { field, .. }) => assert_eq!(field, "prompt.template"),
        other => panic!("expected a schema error, got {other:?}"),
    }
    // a blind control that declares a vision graph's preprocessing
    let (_d, root) = zoo_copy();
    edit_manifest(&root, "tiny-blind", |t| t.replacen("vision_input: false", "vision_input: true", 1));
    match Zoo::open(&root).unwrap().manifest("tiny-blind") {
        Err(Error::Manifest { field, .. }) => assert_eq!(field, "axes.vision_input"),
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn unknown_variant_suggests_a_close_name() {
    let err = Zoo::open(fixture().join("zoo")).unwrap().manifest("tiny-xatn").unwrap_err();
    assert!(err.to_string().contains("similar: `tiny-xattn`"), "{err}");
}

fn tiny() -> lynx_zoo::Model {
    load(&fixture().join("zoo"), "tiny").unwrap()
}

#[test]
fn unreadable_image_is_an_image_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake.png");
    std::fs::write(&fake, b"not an image at all").unwrap();
    let mut model = tiny();
    let err = model.ask(&Media::image(&fake), "what?", &GenerationOptions::greedy(4)).unwrap_err();
    match &err {
        Error::Image { path, .. } => assert_eq!(path, &fake),
        other => panic!("expected an image error, got {other:?}"),
    }
    let missing = dir.path().join("missing.png");
    let err = model.ask(&Media::image(&missing), "what?", &GenerationOptions::greedy(4)).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    // a folder with no frames as a video
    let err = model.ask(&Media::video(dir.path().join("nothing")), "what?", &GenerationOptions::greedy(4));
    assert!(err.is_err());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A PNG whose header claims `w` x `h` pixels, with almost no data: a decompression bomb's shape.
fn bomb_png(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let mut crc_in = kind.to_vec();
        crc_in.extend_from_slice(data);
        c.extend_from_slice(&crc32(&crc_in).to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[test]
fn oversized_image_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.png");
    std::fs::write(&bomb, bomb_png(100_000, 100_000)).unwrap();
    let mut model = tiny();
    let err = model.ask(&Media::image(&bomb), "what?", &GenerationOptions::greedy(4)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Image { .. }), "{err:?}");
    assert!(msg.contains("10000000000 pixels") && msg.contains("decompression bomb"), "{msg}");
}

#[test]
fn empty_question_is_rejected() {
    let mut model = tiny();
    let image = Media::image(fixture().join("media/scene.png"));
    for q in ["", "   \n"] {
        match model.ask(&image, q, &GenerationOptions::greedy(4)) {
            Err(Error::InvalidArgument { what, .. }) => assert_eq!(what, "question"),
            other => panic!("expected an invalid question error, got {other:?}"),
        }
    }
}

#[test]
fn prompt_longer_than_the_context_is_rejected() {
    let mut model = tiny();
    let image = Media::image(fixture().join("media/scene.png"));
    let long = "how many red blocks are there ".repeat(20);
    match model.ask(&image, &long, &GenerationOptions::greedy(4)) {
        Err(e @ Error::ContextOverflow { .. }) => {
            let Error::ContextOverflow { tokens, max_positions, .. } = &e else { unreachable!() };
            assert!(*tokens > *max_positions);
            assert_eq!(*max_positions, 48);
            assert!(e.to_string().contains("shorten the question"));
        }
        other => panic!("expected a context overflow, got {other:?}"),
    }
    // A prompt that fits, with more new tokens asked than fit: the answer is cut, not an error.
    let answer = model.ask(&image, "what colour is the block?", &GenerationOptions::greedy(500)).unwrap();
    assert!(answer.tokens.len() <= 48);
}

#[test]
fn cuda_without_the_feature_says_so() {
    let result = RuntimeOptions::new().with_ep(ExecutionProvider::Cuda { device: 0 });
    if cfg!(feature = "cuda") {
        assert!(result.is_ok());
    } else {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Provider { .. }));
        assert!(err.to_string().contains("lacks CUDA"), "{err}");
    }
}
