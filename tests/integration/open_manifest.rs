//! The open manifest at run time (issue 15): the picture's place in the prompt, decoders without
//! `position_ids`, grouped-query attention, and imported variants in `list`, `show`, `compare`
//! and `report`.
//!
//! Two zoos: copies of the fixture zoo with edited manifests over `tiny`'s graphs (so a layout
//! can be compared with the prefix layout on the very same weights), and the open fixture zoo
//! (tests/fixtures/runtime/open-zoo: `llava-tiny`, an imported LLaVA-shaped model whose goldens
//! come from an independent cache-free reference, checked by tests/integration/runtime_parity.rs).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use lynx_zoo::generate::GenerationOptions;
use lynx_zoo::manifest::{Dim, Origin, PositionIds};
use lynx_zoo::{Error, Media, Model, Request, RuntimeOptions, Zoo};
use ndarray::Array4;

use crate::common;
use common::{copy_dir, fixture, short_bench, zoo_copy};

fn opts() -> RuntimeOptions {
    RuntimeOptions::new().with_intra_threads(1).unwrap()
}

fn load(root: &Path, name: &str) -> Model {
    Zoo::open(root).unwrap().load(name, &opts()).unwrap()
}

fn sha256(path: &Path) -> String {
    lynx_zoo::manifest::paths::sha256_file(path).unwrap()
}

/// The template line of the fixture's manifests.
const TEMPLATE: &str = "  template: 'User: {question}\n\n    Bot:'\n";

/// A copy of the fixture zoo with `tiny`'s manifest rewritten as `name`: the same graphs, the
/// tokenizer with `<image>` (the open zoo's: the fixture tokenizer with its spare `<unk>` renamed),
/// and `prompt` in place of the template line.
fn with_variant(root: &Path, name: &str, prompt: &str) {
    let tok = root.join("onnx/tokenizer-image.json");
    if !tok.exists() {
        fs::copy(fixture().join("open-zoo/onnx/tokenizer.json"), &tok).unwrap();
    }
    let tiny = fs::read_to_string(root.join("variants/tiny.yaml")).unwrap();
    let old_sha = sha256(&root.join("onnx/tokenizer.json"));
    let text = tiny
        .replacen("name: tiny\n", &format!("name: {name}\n"), 1)
        .replacen(TEMPLATE, prompt, 1)
        .replacen("  path: onnx/tokenizer.json\n", "  path: onnx/tokenizer-image.json\n", 1)
        .replacen(&old_sha, &sha256(&tok), 1);
    assert!(text.contains(&format!("name: {name}\n")) && !text.contains(TEMPLATE) && text.contains("tokenizer-image"));
    fs::write(root.join(format!("variants/{name}.yaml")), text).unwrap();
}

/// The scene and the clip as pixels, through `tiny`'s preprocessing.
fn pixels(model: &Model) -> (Array4<f32>, Array4<f32>) {
    let p = model.pixels(&Media::image(fixture().join("media/scene.png"))).unwrap().unwrap();
    let v = model.pixels(&Media::video(fixture().join("media/clip"))).unwrap().unwrap();
    (p, v)
}

#[test]
fn a_placeholder_before_bos_gives_exactly_the_prefix_layouts_logits() {
    let (_t, root) = zoo_copy();
    // `<image><s>User: ...` without the runtime's BOS: [visual][<s>][text], the prefix layout.
    let prompt = "  template: \"<image><s>User: {question}\\nBot:\"\n  image_placeholder: <image>\n  add_bos: false\n";
    with_variant(&root, "tiny-ph", prompt);
    let mut tiny = load(&root, "tiny");
    let mut ph = load(&root, "tiny-ph");
    assert_eq!(ph.manifest().prompt.image_placeholder.as_deref(), Some("<image>"));
    let (image, video) = pixels(&tiny);
    let questions = ["what colour is the block?", "red?"];
    for px in [&image, &video] {
        let both = [px.clone(), px.clone()];
        let a = tiny.prefill_logits(&both, &questions).unwrap();
        let b = ph.prefill_logits(&both, &questions).unwrap();
        // Bit for bit: the same embeddings in the same places, the same mask and positions.
        assert_eq!(a.last_logits, b.last_logits);
        assert!(a.last_logits.iter().all(|x| x.is_finite()));
        // The encoded prompt holds the placeholder's token (id 3) in front of `<s>`.
        for (x, y) in a.input_ids.iter().zip(&b.input_ids) {
            assert_eq!(y[0], 3);
            assert_eq!(&y[1..], &x[..]);
        }
    }
    // Greedy answers, single and in a left-padded batch of mixed lengths and media.
    let g = GenerationOptions::greedy(8);
    let reqs = vec![
        Request::new(Media::Pixels(image.clone()), "what colour is the block?"),
        Request::new(Media::Pixels(video), "where does the block move?"),
        Request::new(Media::Pixels(image), "red?"),
    ];
    let tokens = |m: &mut Model| m.ask_batch(&reqs, &g).unwrap().into_iter().map(|a| a.tokens).collect::<Vec<_>>();
    let want = tokens(&mut tiny);
    assert!(want.iter().any(|t| !t.is_empty()));
    assert_eq!(tokens(&mut ph), want);
}

#[test]
fn a_placeholder_inside_the_prompt_gives_another_well_formed_sequence_also_in_padded_batches() {
    let (_t, root) = zoo_copy();
    // LLaVA's order: <s>, text, the picture, the question.
    with_variant(
        &root,
        "tiny-mid",
        "  template: \"User: <image>\\n{question}\\nBot:\"\n  image_placeholder: <image>\n",
    );
    // The picture right after <s>: not the prefix layout either (the runtime adds <s> first).
    with_variant(&root, "tiny-first", "  template: \"<image>User: {question}\\nBot:\"\n  image_placeholder: <image>\n");
    let mut tiny = load(&root, "tiny");
    let (image, _) = pixels(&tiny);
    let q = "what colour is the block?";
    let base = tiny.prefill_logits(std::slice::from_ref(&image), &[q]).unwrap();
    for name in ["tiny-mid", "tiny-first"] {
        let mut m = load(&root, name);
        let p = m.prefill_logits(std::slice::from_ref(&image), &[q]).unwrap();
        assert!(p.last_logits.iter().all(|x| x.is_finite()), "{name}");
        let diff = p.last_logits.iter().zip(&base.last_logits).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff > 1e-3, "{name}: the picture elsewhere must change the logits (max diff {diff})");
        let ids = &p.input_ids[0];
        assert_eq!(ids[0], 1, "{name}: the runtime's <s> comes first");
        assert_eq!(ids.iter().filter(|&&i| i == 3).count(), 1, "{name}: one placeholder token");
        // Left padding: a batch answers as single questions do.
        let reqs: Vec<Request> = ["what colour is the block?", "red?", "how many shapes are there?"]
            .into_iter()
            .map(|q| Request::new(Media::Pixels(image.clone()), q))
            .collect();
        let g = GenerationOptions::greedy(8);
        let one: Vec<Vec<u32>> = reqs.iter().map(|r| m.ask(&r.media, &r.question, &g).unwrap().tokens).collect();
        let batch: Vec<Vec<u32>> = m.ask_batch(&reqs, &g).unwrap().into_iter().map(|a| a.tokens).collect();
        assert_eq!(batch, one, "{name}");
        // The same prefill in a batch beside a longer question.
        let two = m.prefill_logits(&[image.clone(), image.clone()], &["how many shapes are there?", q]).unwrap();
        let d = two.last_logits.row(1).iter().zip(p.last_logits.row(0)).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(d < 1e-4, "{name}: padded row differs by {d}");
    }
    // A question that holds the placeholder itself is refused before any graph runs.
    let mut mid = load(&root, "tiny-mid");
    match mid.ask(&Media::Pixels(image), "is this <image> red?", &GenerationOptions::greedy(2)) {
        Err(Error::InvalidArgument { what: "question", expected, .. }) => assert!(expected.contains("`<image>`")),
        other => panic!("expected the question refused, got {other:?}"),
    }
}

#[test]
fn a_placeholder_that_is_not_an_added_token_is_refused_by_check() {
    let (_t, root) = zoo_copy();
    with_variant(
        &root,
        "tiny-bad",
        "  template: \"User: <picture>{question}\\nBot:\"\n  image_placeholder: <picture>\n",
    );
    match Zoo::open(&root).unwrap().check("tiny-bad", &opts()) {
        Err(Error::Tokenizer { message, .. }) => {
            assert!(message.contains("prompt.image_placeholder") && message.contains("`<picture>`"), "{message}")
        }
        other => panic!("expected a tokenizer error, got {other:?}"),
    }
}

/// A writable copy of the open fixture zoo.
fn open_zoo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("open-zoo");
    copy_dir(&fixture().join("open-zoo"), &root);
    (dir, root)
}

fn edit(root: &Path, name: &str, f: impl Fn(&str) -> String) {
    let path = root.join(format!("variants/{name}.yaml"));
    let text = fs::read_to_string(&path).unwrap();
    let edited = f(&text);
    assert_ne!(edited, text, "the edit did not apply");
    fs::write(path, edited).unwrap();
}

#[test]
fn an_imported_gqa_decoder_without_position_ids_loads_and_batches_like_single_questions() {
    let root = fixture().join("open-zoo");
    let zoo = Zoo::open(&root).unwrap();
    assert_eq!(zoo.variants(), ["llava-tiny"]);
    let m = zoo.manifest("llava-tiny").unwrap();
    assert!(matches!(&m.origin, Origin::Imported(i) if i.revision.is_none() && i.config_sha256.len() == 64));
    assert_eq!((m.model.heads, m.model.kv_heads, m.model.position_ids), (2, 1, PositionIds::Derived));
    assert!(m.axes.adapter.is_none() && m.axes.data.is_none());
    // The cache the runtime feeds: (batch, kv_heads = 1, past, head_dim), checked against the graph.
    let past = m.graphs.decoder.input("past_key_values.0.key").unwrap();
    assert_eq!(past.shape[1..], [Dim::Fixed(1), Dim::Symbol("past".into()), Dim::Fixed(8)]);
    zoo.check("llava-tiny", &opts()).unwrap();

    let mut model = load(&root, "llava-tiny");
    let image = Media::image(fixture().join("media/scene.png"));
    let video = Media::video(fixture().join("media/clip"));
    let reqs = vec![
        Request::new(image.clone(), "what colour is the block?"),
        Request::new(video, "where does the block move?"),
        Request::new(image.clone(), "how many shapes are there?"),
        Request::new(image, "red?"),
    ];
    for g in [GenerationOptions::greedy(8), GenerationOptions::greedy(8).with_beams(3).unwrap()] {
        let one: Vec<Vec<u32>> = reqs.iter().map(|r| model.ask(&r.media, &r.question, &g).unwrap().tokens).collect();
        let batch: Vec<Vec<u32>> = model.ask_batch(&reqs, &g).unwrap().into_iter().map(|a| a.tokens).collect();
        assert_eq!(batch, one, "{:?}", g.strategy);
        assert!(one.iter().any(|t| !t.is_empty()));
    }
}

#[test]
fn padding_none_answers_a_batch_one_question_at_a_time() {
    // `prompt.padding: none` (a decoder that cannot take left-padded rows, as onnxruntime-genai's
    // GroupQueryAttention): the same answers as single questions, each from a batch of one.
    let (_t, root) = open_zoo();
    edit(&root, "llava-tiny", |t| t.replacen("  padding: left\n", "  padding: none\n", 1));
    let mut model = load(&root, "llava-tiny");
    assert_eq!(model.manifest().prompt.padding, lynx_zoo::manifest::PaddingSide::None);
    let image = Media::image(fixture().join("media/scene.png"));
    let reqs = vec![
        Request::new(image.clone(), "what colour is the block?"),
        Request::new(Media::video(fixture().join("media/clip")), "where does the block move?"),
        Request::new(image, "red?"),
    ];
    let g = GenerationOptions::greedy(8);
    let one: Vec<Vec<u32>> = reqs.iter().map(|r| model.ask(&r.media, &r.question, &g).unwrap().tokens).collect();
    let answers = model.ask_batch(&reqs, &g).unwrap();
    assert!(
        answers.iter().all(|a| a.timings.batch == 1),
        "{:?}",
        answers.iter().map(|a| a.timings.batch).collect::<Vec<_>>()
    );
    assert_eq!(answers.into_iter().map(|a| a.tokens).collect::<Vec<_>>(), one);
}

#[test]
fn a_decoder_without_position_ids_is_refused_unless_the_manifest_says_derived() {
    let (_t, root) = open_zoo();
    // The manifest no longer says `derived`: it must declare the input, which it does not.
    edit(&root, "llava-tiny", |t| t.replacen("  position_ids: derived\n", "", 1));
    match Zoo::open(&root).unwrap().manifest("llava-tiny") {
        Err(Error::Manifest { field, message, .. }) => {
            assert_eq!(field, "graphs.decoder.inputs");
            assert!(message.contains("`position_ids` (int64) is missing") && message.contains("derived"), "{message}");
        }
        other => panic!("expected a manifest error, got {other:?}"),
    }
    // Declaring the input the graph lacks: `check` holds the declaration to the graph.
    edit(&root, "llava-tiny", |t| {
        t.replacen(
            "      - total\n    - name: past_key_values.0.key\n",
            "      - total\n    - name: position_ids\n      dtype: int64\n      shape:\n      - batch\n      - seq\n    - name: past_key_values.0.key\n",
            1,
        )
    });
    match Zoo::open(&root).unwrap().check("llava-tiny", &opts()) {
        Err(Error::GraphIo { graph, tensor, .. }) => {
            assert_eq!((graph.as_str(), tensor.as_str()), ("decoder", "position_ids"))
        }
        other => panic!("expected the graph's inputs to refuse it, got {other:?}"),
    }
}

#[test]
fn gqa_cache_heads_are_held_to_the_graph() {
    let (_t, root) = open_zoo();
    // Claim as many KV heads as query heads: the manifest is consistent, the graph is not.
    edit(&root, "llava-tiny", |t| {
        t.replacen("  kv_heads: 1\n", "  kv_heads: 2\n", 1)
            .replace("      - batch\n      - 1\n", "      - batch\n      - 2\n")
    });
    match Zoo::open(&root).unwrap().check("llava-tiny", &opts()) {
        Err(Error::GraphIo { graph, tensor, .. }) => {
            assert_eq!(graph, "decoder");
            assert!(tensor.starts_with("past_key_values.") || tensor.starts_with("present."), "{tensor}");
        }
        other => panic!("expected the cache shapes refused, got {other:?}"),
    }
}

fn lynx_zoo(root: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lynx-zoo")).args(args).env("LYNX_ZOO_DIR", root).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_cli_lists_shows_compares_and_reports_an_import_beside_zoo_variants() {
    let (t, root) = zoo_copy();
    // `tiny` as an import: no recipe axes, a family and size of its own.
    let mut text =
        fs::read_to_string(root.join("variants/tiny.yaml")).unwrap().replacen("name: tiny\n", "name: tiny-import\n", 1);
    text = text.replacen(
        "axes:\n",
        "origin:\n  kind: imported\n  source: someone/tiny-llava\n  revision: null\n  config_sha256: 0000000000000000000000000000000000000000000000000000000000000000\naxes:\n",
        1,
    );
    for (from, to) in [
        ("    flavour: chat\n", ""),
        ("  adapter:\n    kind: none\n    every: null\n    dim: null\n    rank: null\n", ""),
        ("  freeze:\n    vision: frozen\n    llm: frozen\n", ""),
        ("  prompts: diverse\n", ""),
        ("  quantization: none\n", ""),
        ("    family: gpt2\n", "    family: qwen2\n"),
        ("    size: small\n", "    size: 0.5b\n"),
    ] {
        assert!(text.contains(from), "{from}");
        text = text.replacen(from, to, 1);
    }
    let data = text.find("  data:\n").unwrap();
    let end = data + text[data..].find("  vision_input").unwrap();
    text.replace_range(data..end, "");
    fs::write(root.join("variants/tiny-import.yaml"), text).unwrap();

    let list = lynx_zoo(&root, &["list"]);
    let row = list.lines().find(|l| l.trim_start().starts_with("tiny-import ")).unwrap_or_default();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells.get(2..5), Some(&["qwen2-0.5b", "-", "-"][..]), "{list}");
    assert!(row.contains("(imported)"), "{list}");
    let tiny_row = list.lines().find(|l| l.trim_start().starts_with("tiny ")).unwrap_or_default();
    assert!(tiny_row.contains("gpt2-chat-small") && tiny_row.contains("(baseline)"), "{list}");
    let json: serde_json::Value = serde_json::from_str(&lynx_zoo(&root, &["list", "--format", "json"])).unwrap();
    let entry = |name: &str| json.as_array().unwrap().iter().find(|x| x["name"] == name).cloned().unwrap();
    assert_eq!(entry("tiny-import")["origin"]["source"], "someone/tiny-llava");
    assert!(entry("tiny-import")["axes"].get("adapter").is_none());
    assert_eq!(entry("tiny")["origin"]["kind"], "zoo");

    let show = lynx_zoo(&root, &["show", "tiny-import"]);
    assert!(show.contains("origin:  imported from someone/tiny-llava (revision not recorded"), "{show}");
    assert!(show.contains("(not recorded: backbone.flavour, adapter, freeze, data, prompts, quantization)"), "{show}");
    let yaml = lynx_zoo(&root, &["show", "tiny-import", "--format", "yaml"]);
    assert!(yaml.contains("kind: imported") && !yaml.contains("adapter:"), "{yaml}");
    lynx_zoo(&root, &["check", "tiny-import"]);

    // A mixed comparison and its report.
    let bench = short_bench(t.path(), 6);
    let out = t.path().join("results");
    let args = |extra: &[&str]| {
        let mut a = vec!["compare", "tiny", "tiny-import", "--items", "1", "--repeats", "1", "--max-new-tokens", "3"];
        a.extend_from_slice(&["--bench", bench.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        lynx_zoo(&root, &a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let table = run(&[]);
    assert!(table.contains("tiny (baseline)") && table.contains("tiny-import"), "{table}");
    let doc = t.path().join("results.md");
    fs::write(&doc, "# Results\n\n<!-- report:begin -->\n<!-- report:end -->\n").unwrap();
    let plot = t.path().join("plot.svg");
    lynx_zoo(
        &root,
        &[
            "report",
            "--results",
            out.to_str().unwrap(),
            "--out",
            doc.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
        ],
    );
    let md = fs::read_to_string(&doc).unwrap();
    assert!(md.contains("tiny-import"), "{md}");
}
