//! Manifest parsing and validation on the fixture zoo's manifests, and on edited copies of them.

use std::path::{Path, PathBuf};

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runtime/zoo")
}

fn text(name: &str) -> String {
    std::fs::read_to_string(root().join("variants").join(format!("{name}.yaml"))).unwrap_or_default()
}

fn parse(name: &str, yaml: &str) -> Result<Manifest> {
    let file = root().join("variants").join(format!("{name}.yaml"));
    Manifest::from_yaml(yaml, &file, &root())
}

fn field_of(r: Result<Manifest>) -> String {
    match r {
        Err(Error::Manifest { field, .. }) => field,
        other => format!("not a field error: {other:?}"),
    }
}

#[test]
fn fixture_manifests_parse_into_typed_values() -> Result<()> {
    let m = parse("tiny", &text("tiny"))?;
    assert_eq!(m.axes.connector, Connector::Prefix { kind: ConnectorKind::Resampler });
    assert_eq!(m.axes.connector.family(), ConnectorFamily::Prefix);
    assert_eq!(m.axes.backbone.family, Open::Known(BackboneFamily::Gpt2));
    assert_eq!(m.model.layers, 2);
    assert_eq!(m.graphs.decoder.external_data.len(), 1);
    assert_eq!(m.graphs.decoder.input("past_key_values.1.value").map(|t| t.shape.len()), Some(4));
    assert_eq!(m.preprocess.as_ref().map(|p| p.size), Some(16));
    assert_eq!(m.prompt.render("q"), "User: q\nBot:");
    assert_eq!(m.cache_names()[2], ("past_key_values.1.key".into(), "present.1.key".into()));
    assert_eq!(m.files().len(), 6, "vision, connector, embed, decoder, decoder data, tokenizer");

    let x = parse("tiny-xattn", &text("tiny-xattn"))?;
    assert_eq!(
        x.axes.connector,
        Connector::CrossAttention { kind: ConnectorKind::CrossAttention, every: 2, layers: vec![1] }
    );
    let b = parse("tiny-blind", &text("tiny-blind"))?;
    assert_eq!(b.axes.connector.family(), ConnectorFamily::Blind);
    assert!(b.graphs.vision.is_none() && b.preprocess.is_none() && b.video.is_none());
    Ok(())
}

#[test]
fn schema_rules_name_their_field() {
    let t = text("tiny");
    let cases: Vec<(String, &str)> = vec![
        (t.replacen("schema_version: 1", "schema_version: 2", 1), "schema_version"),
        (t.replacen("name: tiny", "name: other", 1), "name"),
        (t.replacen("  heads: 2\n", "  heads: 3\n", 1), "model.kv_heads"),
        (t.replacen("  resolution: 16", "  resolution: 32", 1), "preprocess.size"),
        (t.replacen("  frames: 2\n  sampling", "  frames: 3\n  sampling", 1), "video.frames"),
        (t.replacen("- 0.26862954", "- 0.0", 1), "preprocess.std"),
        (t.replacen("max_new_tokens: 8", "max_new_tokens: 0", 1), "generation.max_new_tokens"),
        (t.replacen("top_p: 1.0", "top_p: 1.5", 1), "generation.top_p"),
        (t.replacen("    - name: visual_embeds", "    - name: visual_embedz", 1), "graphs.connector.outputs"),
        (t.replacen("    - name: present.1.value", "    - name: present.1.valu", 1), "graphs.decoder.outputs"),
        (t.replacen("kind: resampler", "kind: perceiver", 1), "axes.connector.kind"),
        (t.replacen("  prompts: diverse", "  prompts: many", 1), "axes.prompts"),
        (t.replacen("  vision_input: true", "  vision_input: true\n  colour: blue", 1), "axes"),
    ];
    for (yaml, want) in cases {
        assert_ne!(yaml, t, "case {want}: the edit did not apply");
        assert_eq!(field_of(parse("tiny", &yaml)), want);
    }
}

#[test]
fn sha256_must_be_hex() {
    let t = text("tiny");
    let sha = t.lines().find_map(|l| l.trim().strip_prefix("sha256: ")).unwrap_or_default().to_string();
    let yaml = t.replacen(&sha, "abc", 1);
    let r = parse("tiny", &yaml);
    assert!(field_of(r).ends_with("sha256"));
}

#[test]
fn manifest_path_is_in_errors() {
    let msg = match parse("tiny", &text("tiny").replacen("kind: resampler", "kind: x", 1)) {
        Err(e) => e.to_string(),
        Ok(_) => String::from("parsed"),
    };
    assert!(msg.contains(&Path::new("variants").join("tiny.yaml").display().to_string()), "{msg}");
    assert!(msg.contains("axes.connector.kind"), "{msg}");
}

#[test]
fn a_seed_replicate_names_another_variant_and_has_a_seed() {
    let base = text("tiny");
    let with = |extra: &str| base.replacen("changes:", &format!("{extra}\nchanges:"), 1);
    assert!(base.contains("  seed: 1234\n"));
    assert_eq!(field_of(parse("tiny", &with("seed_of: tiny"))), "seed_of");
    assert_eq!(field_of(parse("tiny", &with("seed_of: tiny-xattn").replace("  seed: 1234\n", ""))), "seed_of");
    let m = parse("tiny", &with("seed_of: tiny-xattn")).unwrap();
    assert_eq!(m.seed_of.as_deref(), Some("tiny-xattn"));
}

#[test]
fn numbers_past_their_bounds_name_their_field() {
    let t = text("tiny");
    let cases: Vec<(String, &str)> = vec![
        (t.replacen("  layers: 2\n", "  layers: 4000000000\n", 1), "model.layers"),
        (t.replacen("  hidden: 16\n", "  hidden: 100000\n", 1), "model.hidden"),
        (t.replacen("  resolution: 16", "  resolution: 5000", 1), "axes.resolution"),
        (t.replacen("  size: 16", "  size: 5000", 1), "preprocess.size"),
        (
            t.replacen("  resolution: 16", "  resolution: 4096", 1).replacen("  frames: 2\n", "  frames: 5\n", 1),
            "axes.frames",
        ),
        (t.replacen("  visual_tokens: 3", "  visual_tokens: 49", 1), "axes.visual_tokens"),
        (t.replacen("    latents: 3", "    latents: 100000", 1), "axes.connector.latents"),
        (t.replacen("  beams: 3", "  beams: 100000", 1), "generation.beams"),
        (t.replacen("max_new_tokens: 8", "max_new_tokens: 49", 1), "generation.max_new_tokens"),
        (t.replacen("      - 3\n", &format!("      - {}\n", 1u64 << 40), 1), "graphs.vision.inputs.pixel_values.shape"),
    ];
    for (yaml, want) in cases {
        assert_ne!(yaml, t, "case {want}: the edit did not apply");
        assert_eq!(field_of(parse("tiny", &yaml)), want);
    }
}

#[test]
fn the_committed_json_schema_is_the_generated_one() {
    // Regenerate with `LYNX_BLESS=1 cargo test --release --lib json_schema`.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/manifest.schema.json");
    let generated = super::json_schema();
    if std::env::var_os("LYNX_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(generated.contains("\"schema_version\"") && generated.contains("\"cross_attention\""));
    // The blank picture's colour, for the exporter: `x-blank-rgb` of `vision_input: blank`.
    let schema: serde_json::Value = serde_json::from_str(&generated).unwrap();
    let blank = schema["$defs"]["VisionInput"]["oneOf"].as_array().unwrap().iter().find(|v| v["const"] == "blank");
    assert_eq!(blank.map(|v| v["x-blank-rgb"].clone()), Some(serde_json::json!([255, 255, 255])));
    assert_eq!(VisionInput::BLANK_RGB, [255, 255, 255]);
    assert!(
        committed == generated,
        "docs/manifest.schema.json is stale: run `LYNX_BLESS=1 cargo test --release --lib json_schema`"
    );
}

/// The tiny fixture without its vision graph: the `graphs.vision` block cut out.
fn without_vision_graph(t: &str) -> String {
    let start = t.find("  vision:\n    path:").unwrap_or(0);
    let end = t.find("  connector:\n    path:").unwrap_or(0);
    assert!(start > 0 && end > start, "the fixture's graph blocks moved");
    format!("{}{}", &t[..start], &t[end..])
}

#[test]
fn vision_input_reads_three_names_and_the_older_booleans() -> Result<()> {
    let t = text("tiny");
    let with = |v: &str| t.replacen("  vision_input: true\n", &format!("  vision_input: {v}\n"), 1);
    assert_eq!(parse("tiny", &t)?.axes.vision_input, VisionInput::Picture);
    assert_eq!(parse("tiny", &with("picture"))?.axes.vision_input, VisionInput::Picture);
    let blank = parse("tiny", &with("blank"))?;
    assert_eq!(blank.axes.vision_input, VisionInput::Blank);
    // The matched blind control keeps the vision side: graphs, preprocessing, frames.
    assert!(blank.graphs.vision.is_some() && blank.graphs.connector.is_some());
    assert_eq!((blank.preprocess.as_ref().map(|p| p.size), blank.video.map(|v| v.frames)), (Some(16), Some(2)));
    assert!(!blank.axes.vision_input.sees() && blank.axes.vision_input.has_vision());

    let b = text("tiny-blind");
    assert!(b.contains("  vision_input: false\n"));
    assert_eq!(parse("tiny-blind", &b)?.axes.vision_input, VisionInput::None);
    let none = b.replacen("  vision_input: false\n", "  vision_input: none\n", 1);
    assert_eq!(parse("tiny-blind", &none)?.axes.vision_input, VisionInput::None);

    // The serde mirror keeps the value as written (what `show` and `list --format json` print).
    let file = root().join("variants/tiny.yaml");
    let raw = |text: &str| yaml::parse::<RawManifest>(text, &file).map(|r| r.axes.vision_input);
    assert_eq!(raw(&t)?, raw::RawVisionInput::Flag(true));
    assert_eq!(raw(&with("blank"))?, raw::RawVisionInput::Named(VisionInput::Blank));
    assert_eq!(yaml::scalar(&raw(&t)?), "true");
    assert_eq!(yaml::scalar(&raw(&with("blank"))?), "blank");
    Ok(())
}

#[test]
fn a_bad_vision_input_names_the_field_and_the_expected_values() {
    let t = text("tiny");
    for bad in ["blnk", "\"true\"", "1", "yes", "[picture]"] {
        let yaml = t.replacen("  vision_input: true\n", &format!("  vision_input: {bad}\n"), 1);
        match parse("tiny", &yaml) {
            Err(Error::Manifest { field, message, .. }) => {
                assert_eq!(field, "axes.vision_input", "{bad}: {message}");
                assert!(message.contains("`picture`, `blank` or `none`"), "{bad}: {message}");
            }
            other => panic!("{bad}: expected a manifest error, got {other:?}"),
        }
    }
    let yaml = t.replacen("  vision_input: true\n", "  vision_input: blnk\n", 1);
    let msg = parse("tiny", &yaml).map(|_| ()).unwrap_err().to_string();
    assert!(msg.contains("`blnk`"), "{msg}");
}

#[test]
fn vision_input_agrees_with_the_connector_and_the_graphs() {
    let t = text("tiny");
    let b = text("tiny-blind");
    let cases: Vec<(String, &str, &str)> = vec![
        // `none` needs connector kind `none`, and `picture` / `blank` need a connector.
        (t.replacen("  vision_input: true\n", "  vision_input: none\n", 1), "axes.vision_input", "`none`"),
        (b.replacen("  vision_input: false\n", "  vision_input: blank\n", 1), "axes.vision_input", "`blank`"),
        (b.replacen("  vision_input: false\n", "  vision_input: picture\n", 1), "axes.vision_input", "`picture`"),
        // `blank` runs the vision graph: without it the manifest is refused.
        (
            without_vision_graph(&t.replacen("  vision_input: true\n", "  vision_input: blank\n", 1)),
            "graphs.vision",
            "`vision_input: blank`",
        ),
    ];
    for (yaml, want, words) in cases {
        assert!(yaml != t && yaml != b, "case {want} {words}: the edit did not apply");
        let name = if yaml.contains("name: tiny-blind") { "tiny-blind" } else { "tiny" };
        match parse(name, &yaml) {
            Err(Error::Manifest { field, message, .. }) => {
                assert_eq!(field, want, "{message}");
                assert!(message.contains(words), "{field}: {message}");
            }
            other => panic!("{want}: expected a manifest error, got {other:?}"),
        }
    }
    // Without its preprocessing, a `blank` variant is refused as a `picture` one is.
    let p = t.find("preprocess:\n").unwrap_or(0);
    let q = t[p..].find("video:\n").map_or(0, |k| p + k);
    assert!(p > 0 && q > p);
    let no_pre = format!("{}{}", &t[..p], &t[q..]).replacen("  vision_input: true\n", "  vision_input: blank\n", 1);
    assert_eq!(field_of(parse("tiny", &no_pre)), "preprocess");
}
