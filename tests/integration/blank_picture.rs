//! The matched blind control (`axes.vision_input: blank`, issue 13): the same graphs as its
//! `picture` twin, with every image and video frame replaced by the blank picture (every pixel
//! (255, 255, 255), at the preprocess size) before the vision graph runs.
//!
//! The control here is the fixture zoo's `tiny` with `vision_input: blank` (`tiny-blank`, written
//! into a copy of the zoo): two different pictures must give it identical pixels, logits and
//! greedy answers, equal to what `tiny` itself gives for an explicitly white picture file -- while
//! `tiny` gives the two pictures different logits, so the comparison can fail.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use lynx_zoo::generate::GenerationOptions;
use lynx_zoo::manifest::VisionInput;
use lynx_zoo::{Media, Model, Request, RuntimeOptions, Zoo};

use crate::common;
use common::{fixture, repo, short_bench, zoo_copy};

/// A copy of the fixture zoo with `tiny-blank`: `tiny`'s manifest (same graphs, same goldens
/// file) with `vision_input: blank`.
fn zoo_with_blank() -> (tempfile::TempDir, PathBuf) {
    let (dir, root) = zoo_copy();
    let tiny = fs::read_to_string(root.join("variants/tiny.yaml")).unwrap();
    let blank = tiny
        .replacen("name: tiny\n", "name: tiny-blank\n", 1)
        .replacen("  vision_input: true\n", "  vision_input: blank\n", 1)
        .replacen("changes: null\n", "changes: vision_input\n", 1);
    assert!(blank.contains("name: tiny-blank\n") && blank.contains("vision_input: blank\n"));
    fs::write(root.join("variants/tiny-blank.yaml"), blank).unwrap();
    (dir, root)
}

fn load(root: &Path, name: &str) -> Model {
    let opts = RuntimeOptions::new().with_intra_threads(1).unwrap();
    Zoo::open(root).unwrap().load(name, &opts).unwrap()
}

/// A white picture file of `w` x `h` (another size than the preprocess size: it is resized).
fn white_png(dir: &Path, w: u32, h: u32) -> PathBuf {
    let p = dir.join(format!("white-{w}x{h}.png"));
    image::RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255])).save(&p).unwrap();
    p
}

/// Two different pictures: the fixture scene and a benchmark picture.
fn two_pictures() -> (Media, Media) {
    (Media::image(fixture().join("media/scene.png")), Media::image(repo().join("data/test/images/000003.png")))
}

#[test]
fn the_blank_variant_loads_with_its_twins_graphs() {
    let (_t, root) = zoo_with_blank();
    let zoo = Zoo::open(&root).unwrap();
    let blank = zoo.manifest("tiny-blank").unwrap();
    let tiny = zoo.manifest("tiny").unwrap();
    assert_eq!(blank.axes.vision_input, VisionInput::Blank);
    assert_eq!(tiny.axes.vision_input, VisionInput::Picture);
    let shas = |m: &lynx_zoo::Manifest| m.graphs.iter().map(|g| g.file.sha256.clone()).collect::<Vec<_>>();
    assert_eq!(shas(&blank), shas(&tiny));
    zoo.check("tiny-blank", &RuntimeOptions::new()).unwrap();
}

#[test]
fn every_picture_becomes_the_same_blank_picture() {
    let (t, root) = zoo_with_blank();
    let blank = load(&root, "tiny-blank");
    let tiny = load(&root, "tiny");
    let (a, b) = two_pictures();
    let white = Media::image(white_png(t.path(), 40, 30));

    let px = |m: &Model, media: &Media| m.pixels(media).unwrap().unwrap();
    // The twin sees the pictures themselves: different pixels.
    assert_ne!(px(&tiny, &a), px(&tiny, &b));
    // The control sees one blank picture whatever it is given, equal to a white picture file.
    let seen = px(&blank, &a);
    assert_eq!(seen.dim(), (1, 3, 16, 16));
    assert_eq!(seen, px(&blank, &b));
    assert_eq!(seen, px(&tiny, &white));
    assert_eq!(seen, blank.preprocessor().unwrap().blank(1));
    // Preprocessed pixels handed in are replaced too.
    assert_eq!(px(&blank, &Media::Pixels(px(&tiny, &a))), seen);

    // A video: the manifest's frame count (2), each frame blank.
    let video = px(&blank, &Media::video(fixture().join("media/clip")));
    assert_eq!(video.dim(), (2, 3, 16, 16));
    for frame in video.outer_iter() {
        assert_eq!(frame, seen.index_axis(ndarray::Axis(0), 0));
    }
    assert_ne!(px(&tiny, &Media::video(fixture().join("media/clip"))), video);

    // A text-only item does not become a blank picture: it is refused, as for `picture`.
    assert!(blank.pixels(&Media::None).is_err() && tiny.pixels(&Media::None).is_err());
    // A file that cannot be read fails as it does for the twin (the media are still read).
    let missing = Media::image(t.path().join("missing.png"));
    assert!(blank.pixels(&missing).is_err() && tiny.pixels(&missing).is_err());
}

#[test]
fn the_blank_variant_answers_as_its_twin_does_on_a_white_picture() {
    let (t, root) = zoo_with_blank();
    let mut blank = load(&root, "tiny-blank");
    let mut tiny = load(&root, "tiny");
    let (a, b) = two_pictures();
    let white = Media::image(white_png(t.path(), 16, 16));
    let q = "what colour is the block?";

    // Prefill logits on the pictures' own pixels: the twin tells them apart, the control does not.
    let own = |m: &Model, media: &Media| m.preprocessor().unwrap().pixels(media).unwrap();
    let (pa, pb, pw) = (own(&tiny, &a), own(&tiny, &b), own(&tiny, &white));
    let logits = |m: &mut Model, px| m.prefill_logits(&[px], &[q]).unwrap().last_logits;
    let (ta, tb, tw) = (logits(&mut tiny, pa.clone()), logits(&mut tiny, pb.clone()), logits(&mut tiny, pw));
    assert!(ta != tb && ta != tw, "the twin's logits do not depend on the picture; the test cannot fail");
    let (ba, bb) = (logits(&mut blank, pa), logits(&mut blank, pb));
    assert_eq!(ba, bb);
    assert_eq!(ba, tw, "the control's logits differ from the twin's on a white picture");

    // Greedy answers, single and batched, images and a video.
    let opts = GenerationOptions::greedy(8);
    let tokens = |m: &mut Model, media: &Media| m.ask(media, q, &opts).unwrap().tokens;
    let on_white = tokens(&mut tiny, &white);
    assert_eq!(tokens(&mut blank, &a), on_white);
    assert_eq!(tokens(&mut blank, &b), on_white);
    let clip = Media::video(fixture().join("media/clip"));
    let blank_video = tokens(&mut blank, &clip);
    let reqs = vec![Request::new(a.clone(), q), Request::new(clip, q), Request::new(b, q)];
    let batch: Vec<Vec<u32>> = blank.ask_batch(&reqs, &opts).unwrap().into_iter().map(|x| x.tokens).collect();
    assert_eq!(batch, vec![on_white.clone(), blank_video, on_white]);

    // The control runs the vision graph and the connector, as its twin does.
    let answer = blank.ask(&a, q, &opts).unwrap();
    assert!(answer.timings.vision > std::time::Duration::ZERO && answer.timings.connector > std::time::Duration::ZERO);
}

fn lynx_zoo(root: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lynx-zoo")).args(args).env("LYNX_ZOO_DIR", root).output().unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "{args:?}: {stderr}");
    (stdout, stderr)
}

#[test]
fn the_cli_asks_lists_and_compares_the_blank_control_as_a_blind_one() {
    let (t, root) = zoo_with_blank();
    let white = white_png(t.path(), 24, 24);
    let scene = fixture().join("media/scene.png");
    let ask = |variant: &str, image: &Path| {
        lynx_zoo(&root, &["ask", variant, "--image", image.to_str().unwrap(), "--question", "what colour?"])
    };
    let (answer, note) = ask("tiny-blank", &scene);
    assert_eq!(answer, ask("tiny", &white).0);
    assert!(note.contains("blank picture"), "{note}");

    let (list, _) = lynx_zoo(&root, &["list"]);
    let row = list.lines().find(|l| l.trim_start().starts_with("tiny-blank ")).unwrap_or_default();
    assert!(row.contains(" blank "), "{list}");
    let (json, _) = lynx_zoo(&root, &["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let axes = |name: &str| v.as_array().unwrap().iter().find(|x| x["name"] == name).unwrap()["axes"].clone();
    assert_eq!(axes("tiny-blank")["vision_input"], "blank");
    assert_eq!(axes("tiny-blind")["vision_input"], false, "an older manifest prints as written");

    // compare: the blank control is a blind row (no image swap), marked as a blank picture.
    let bench = short_bench(t.path(), 6);
    let out = t.path().join("results");
    let (table, _) = lynx_zoo(
        &root,
        &[
            "compare",
            "tiny",
            "tiny-blank",
            "tiny-blind",
            "--no-latency",
            "--max-new-tokens",
            "3",
            "--bench",
            bench.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    // The accuracy table's records.
    let rows: serde_json::Value = serde_json::from_str(&table).unwrap();
    let role = |name: &str| {
        rows.as_array().unwrap().iter().find(|r| r["variant"] == name).map(|r| r["role"].clone()).unwrap_or_default()
    };
    assert_eq!(role("tiny-blank"), "blind", "{table}");
    assert_eq!(role("tiny-blind"), "blind", "{table}");
    assert_eq!(role("tiny"), "baseline", "{table}");
    let swap = |name: &str| out.join(name).join(lynx_zoo::results::IMAGE_SWAP_DIR);
    assert!(swap("tiny").is_dir());
    assert!(!swap("tiny-blank").exists() && !swap("tiny-blind").exists());
    let (text, _) = lynx_zoo(
        &root,
        &[
            "compare",
            "tiny",
            "tiny-blank",
            "tiny-blind",
            "--no-latency",
            "--max-new-tokens",
            "3",
            "--bench",
            bench.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(text.contains("tiny-blank (blank picture)") && text.contains("tiny-blind (blind)"), "{text}");
}
