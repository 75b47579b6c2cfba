//! The open manifest (issue 15): `origin`, free backbone names and optional recipe axes for
//! imported variants, the image placeholder, decoders without `position_ids`, and the KV-cache
//! names and layout -- on edited copies of the fixture zoo's manifests, and on every shipped one.

use std::path::{Path, PathBuf};

use super::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runtime/zoo")
}

fn text(name: &str) -> String {
    std::fs::read_to_string(root().join("variants").join(format!("{name}.yaml"))).unwrap_or_default()
}

fn parse(name: &str, yaml: &str) -> Result<Manifest> {
    Manifest::from_yaml(yaml, &root().join("variants").join(format!("{name}.yaml")), &root())
}

/// The field and message of a manifest error, or a description of what came instead.
fn refusal(r: Result<Manifest>) -> (String, String) {
    match r {
        Err(Error::Manifest { field, message, .. }) => (field, message),
        other => (format!("not a field error: {other:?}"), String::new()),
    }
}

const SHA: &str = "3F2A000000000000000000000000000000000000000000000000000000000abc";

/// An `origin:` block of an import.
fn imported(source: &str) -> String {
    format!("origin:\n  kind: imported\n  source: {source}\n  revision: 0123abc\n  config_sha256: {SHA}\naxes:\n")
}

/// `t` without the block that starts with the line `head` (the line and every line indented
/// deeper than it).
fn drop_block(t: &str, head: &str) -> String {
    let start = t.find(head).unwrap_or_else(|| panic!("no `{head}` in the manifest"));
    let indent = head.len() - head.trim_start().len();
    let mut end = start + head.len();
    for line in t[end..].split_inclusive('\n') {
        if line.len() - line.trim_start().len() <= indent {
            break;
        }
        end += line.len();
    }
    format!("{}{}", &t[..start], &t[end..])
}

/// The recipe axes of the fixture's `tiny`, each as the block that holds it.
const RECIPE: [(&str, &str); 6] = [
    ("axes.backbone.flavour", "    flavour: chat\n"),
    ("axes.adapter", "  adapter:\n"),
    ("axes.freeze", "  freeze:\n"),
    ("axes.data", "  data:\n"),
    ("axes.prompts", "  prompts: diverse\n"),
    ("axes.quantization", "  quantization: none\n"),
];

/// `tiny` as an import: an `origin`, no recipe axes, a backbone the zoo does not have.
fn imported_tiny() -> String {
    let mut t = text("tiny").replacen("axes:\n", &imported("llava-hf/tiny-random-llava"), 1);
    for (_, block) in RECIPE {
        t = drop_block(&t, block);
    }
    t.replacen("    family: gpt2\n", "    family: qwen2\n", 1).replacen("    size: small\n", "    size: 0.5b\n", 1)
}

#[test]
fn origin_is_the_zoo_unless_the_manifest_says_imported() -> Result<()> {
    let t = text("tiny");
    assert_eq!(parse("tiny", &t)?.origin, Origin::Zoo);
    let zoo = t.replacen("axes:\n", "origin:\n  kind: zoo\naxes:\n", 1);
    assert_eq!(parse("tiny", &zoo)?.origin, Origin::Zoo);
    let m = parse("tiny", &t.replacen("axes:\n", &imported("llava-hf/llava-1.5-7b-hf"), 1))?;
    assert_eq!(
        m.origin,
        Origin::Imported(Import {
            source: "llava-hf/llava-1.5-7b-hf".into(),
            revision: Some("0123abc".into()),
            config_sha256: SHA.to_ascii_lowercase(),
        })
    );
    // revision may be null or absent
    let no_rev = t.replacen("axes:\n", &imported("some-folder").replacen("  revision: 0123abc\n", "", 1), 1);
    assert!(matches!(parse("tiny", &no_rev)?.origin, Origin::Imported(Import { revision: None, .. })));

    let with = |origin: &str| t.replacen("axes:\n", &format!("origin:\n{origin}axes:\n"), 1);
    for (yaml, field) in [
        (with("  kind: borrowed\n"), "origin.kind"),
        (with("  kind: imported\n  config_sha256: 00\n  source: x\n"), "origin.config_sha256"),
        (with("  kind: imported\n  source: x\n"), "origin.config_sha256"),
        (with(&format!("  kind: imported\n  config_sha256: {SHA}\n  source: ' '\n")), "origin.source"),
        (with(&format!("  kind: imported\n  config_sha256: {SHA}\n")), "origin.source"),
        (with(&format!("  kind: imported\n  config_sha256: {SHA}\n  source: x\n  revision: ''\n")), "origin.revision"),
        (with("  kind: zoo\n  source: x\n"), "origin.source"),
        (with(&format!("  kind: imported\n  source: x\n  config_sha256: {SHA}\n  licence: mit\n")), "origin"),
    ] {
        let (got, message) = refusal(parse("tiny", &yaml));
        assert_eq!(got, field, "{message}\n{yaml}");
    }
    Ok(())
}

#[test]
fn an_import_may_leave_the_recipe_out_and_name_its_own_backbone() -> Result<()> {
    let m = parse("tiny", &imported_tiny())?;
    assert!(m.origin.is_imported());
    let a = &m.axes;
    assert_eq!((a.adapter, a.freeze, a.data, a.prompts, a.quantization), (None, None, None, None, None));
    assert_eq!(a.backbone.flavour, None);
    assert_eq!(a.backbone.family, Open::Other("qwen2".into()));
    assert_eq!((a.backbone.family.to_string(), a.backbone.size.to_string()), ("qwen2".into(), "0.5b".into()));
    // What the runtime needs stays: connector, resolution, frames, what it sees.
    assert_eq!(a.connector.family(), ConnectorFamily::Prefix);
    assert_eq!((a.resolution, a.frames, a.vision_input), (16, 2, VisionInput::Picture));
    // null reads as absent
    let nulls = imported_tiny().replacen("  vision_input: true\n", "  vision_input: true\n  adapter: null\n", 1);
    assert_eq!(parse("tiny", &nulls)?.axes.adapter, None);
    // A zoo family stays typed in an import, too.
    let llama = imported_tiny().replacen("    family: qwen2\n", "    family: llama\n", 1);
    assert_eq!(parse("tiny", &llama)?.axes.backbone.family, Open::Known(BackboneFamily::Llama));
    // Names are one word.
    for bad in ["'qwen 2'", "''", "q/2"] {
        let yaml = imported_tiny().replacen("    family: qwen2\n", &format!("    family: {bad}\n"), 1);
        assert_eq!(refusal(parse("tiny", &yaml)).0, "axes.backbone.family", "{bad}");
    }
    Ok(())
}

#[test]
fn a_zoo_variant_without_a_recipe_axis_or_with_a_foreign_backbone_is_refused_by_field() {
    let t = text("tiny");
    for (field, block) in RECIPE {
        let (got, message) = refusal(parse("tiny", &drop_block(&t, block)));
        assert_eq!(got, field, "{message}");
        assert!(message.contains("zoo variant") && message.contains("imported"), "{message}");
    }
    let (field, message) = refusal(parse("tiny", &t.replacen("    family: gpt2\n", "    family: qwen2\n", 1)));
    assert_eq!(field, "axes.backbone.family");
    assert!(message.contains("`qwen2`") && message.contains("`llama` or `gpt2`"), "{message}");
    let (field, message) = refusal(parse("tiny", &t.replacen("    size: small\n", "    size: 0.5b\n", 1)));
    assert_eq!(field, "axes.backbone.size");
    assert!(message.contains("`small` or `large`"), "{message}");
    // An explicit `origin: {kind: zoo}` holds the manifest to the same rules.
    let zoo = drop_block(&t, "  freeze:\n").replacen("axes:\n", "origin: {kind: zoo}\naxes:\n", 1);
    assert_eq!(refusal(parse("tiny", &zoo)).0, "axes.freeze");
}

/// `tiny` with the decoder's `position_ids` input taken out of `graphs.decoder.inputs`.
fn without_position_ids(t: &str) -> String {
    let block = "    - name: position_ids\n      dtype: int64\n      shape:\n      - batch\n      - seq\n";
    assert!(t.contains(block), "the fixture's decoder inputs moved");
    t.replacen(block, "", 1)
}

#[test]
fn a_decoder_without_position_ids_is_accepted_only_when_the_manifest_says_so() -> Result<()> {
    let t = text("tiny");
    assert_eq!(parse("tiny", &t)?.model.position_ids, PositionIds::Input);
    // Not declared: refused, with the way out named.
    let (field, message) = refusal(parse("tiny", &without_position_ids(&t)));
    assert_eq!(field, "graphs.decoder.inputs");
    assert!(message.contains("`position_ids` (int64) is missing") && message.contains("position_ids: derived"));
    // Declared: accepted.
    let derived =
        without_position_ids(&t).replacen("  max_positions: 48\n", "  max_positions: 48\n  position_ids: derived\n", 1);
    let m = parse("tiny", &derived)?;
    assert_eq!(m.model.position_ids, PositionIds::Derived);
    assert!(m.graphs.decoder.input("position_ids").is_none());
    // Declared derived while the decoder still lists the input: refused.
    let both = t.replacen("  max_positions: 48\n", "  max_positions: 48\n  position_ids: derived\n", 1);
    assert_eq!(refusal(parse("tiny", &both)).0, "model.position_ids");
    let bad = t.replacen("  max_positions: 48\n", "  max_positions: 48\n  position_ids: computed\n", 1);
    assert_eq!(refusal(parse("tiny", &bad)).0, "model.position_ids");
    Ok(())
}

#[test]
fn kv_cache_names_follow_the_manifest_and_other_layouts_are_refused() -> Result<()> {
    let t = text("tiny");
    let m = parse("tiny", &t)?;
    assert_eq!(m.kv_cache, KvCache::default());
    assert_eq!(m.cache_names()[3], ("past_key_values.1.value".into(), "present.1.value".into()));
    let with = |kv: &str| t.replacen("  max_positions: 48\n", &format!("  max_positions: 48\n  kv_cache:\n{kv}"), 1);
    // The defaults written out read as the defaults.
    let written = with(
        "    past: past_key_values.{i}.{kv}\n    present: present.{i}.{kv}\n    layout: bnsh\n    update: concat\n",
    );
    assert_eq!(parse("tiny", &written)?.kv_cache, KvCache::default());
    // Other names: the decoder must declare those.
    let renamed = with("    past: past.{i}.{kv}\n    present: cache.{i}.{kv}\n");
    let (field, message) = refusal(parse("tiny", &renamed));
    assert_eq!(field, "graphs.decoder.inputs");
    assert!(message.contains("`past.0.key`"), "{message}");
    let renamed = renamed.replace("name: past_key_values.", "name: past.").replace("name: present.", "name: cache.");
    let m = parse("tiny", &renamed)?;
    assert_eq!(m.cache_names()[0], ("past.0.key".into(), "cache.0.key".into()));
    // A shared past/present buffer, with a prompt that is never padded.
    let shared = with("    update: shared_buffer\n").replacen("  padding: left\n", "  padding: none\n", 1);
    assert_eq!(parse("tiny", &shared)?.kv_cache.update, KvUpdate::SharedBuffer);
    // ... or padded on the right, each row from the buffer's start; a concatenated cache cannot be.
    let right = shared.replacen("  padding: none\n", "  padding: right\n", 1);
    assert_eq!(parse("tiny", &right)?.prompt.padding, PaddingSide::Right);
    let concat_right = t.replacen("  padding: left\n", "  padding: right\n", 1);
    let (field, message) = refusal(parse("tiny", &concat_right));
    assert_eq!(field, "prompt.padding");
    assert!(message.contains("`right` needs `model.kv_cache.update: shared_buffer`"), "{message}");
    // The one layout this runtime supports; the others are refused with the reason.
    for (kv, field, words) in [
        ("    layout: bsnh\n", "model.kv_cache.layout", "(batch, kv_heads, seq, head_dim)"),
        ("    update: shared_buffer\n", "prompt.padding", "`left` with `model.kv_cache.update: shared_buffer`"),
        ("    layout: nbsh\n", "model.kv_cache.layout", "bnsh"),
        ("    past: past_key_values.{i}\n", "model.kv_cache.past", "{kv}"),
        ("    present: present.{i}.{i}.{kv}\n", "model.kv_cache.present", "{i}"),
        ("    present: '{i}{kv}'\n", "model.kv_cache.present", "{i}"),
        ("    past: present.{i}.{kv}\n", "model.kv_cache.present", "same pattern"),
        ("    past: cross_key_values.{i}.{kv}\n", "model.kv_cache.past", "cross_key_values."),
    ] {
        let (got, message) = refusal(parse("tiny", &with(kv)));
        assert_eq!(got, field, "{kv}: {message}");
        assert!(message.contains(words), "{kv}: {message}");
    }
    Ok(())
}

#[test]
fn grouped_query_attention_cache_shapes_are_held_to_kv_heads() -> Result<()> {
    // heads 2, kv_heads 1: the cache tensors must declare 1 head (a GQA decoder), not 2.
    let t = text("tiny").replacen("  kv_heads: 2\n", "  kv_heads: 1\n", 1);
    let (field, message) = refusal(parse("tiny", &t));
    assert_eq!(field, "graphs.decoder.inputs.past_key_values.0.key.shape");
    assert!(message.contains("`model.kv_heads` is `1`"), "{message}");
    let gqa = t.replace("      - batch\n      - 2\n      - past\n", "      - batch\n      - 1\n      - past\n");
    let (field, _) = refusal(parse("tiny", &gqa));
    assert_eq!(field, "graphs.decoder.outputs.present.0.key.shape", "past fixed, present not yet");
    let gqa = gqa.replace("      - batch\n      - 2\n      - total\n", "      - batch\n      - 1\n      - total\n");
    let m = parse("tiny", &gqa)?;
    assert_eq!((m.model.heads, m.model.kv_heads), (2, 1));
    Ok(())
}

#[test]
fn the_image_placeholder_goes_once_in_the_template_of_a_prefix_variant() -> Result<()> {
    let t = text("tiny");
    let template = "  template: 'User: {question}\n\n    Bot:'\n";
    assert!(t.contains(template), "the fixture's template moved");
    let with = |t: &str, tpl: &str, ph: &str| {
        t.replacen(template, &format!("  template: \"{tpl}\"\n  image_placeholder: \"{ph}\"\n  add_bos: false\n"), 1)
    };
    let m = parse("tiny", &with(&t, "USER: <image>\\n{question} ASSISTANT:", "<image>"))?;
    assert_eq!(m.prompt.image_placeholder.as_deref(), Some("<image>"));
    assert!(!m.prompt.add_bos);
    assert!(parse("tiny", &t)?.prompt.add_bos && parse("tiny", &t)?.prompt.image_placeholder.is_none());
    for (yaml, name, field, words) in [
        (with(&t, "USER: {question}", "<image>"), "tiny", "prompt.template", "exactly once, not 0 times"),
        (with(&t, "<image><image>{question}", "<image>"), "tiny", "prompt.template", "not 2 times"),
        (with(&t, "<image>{question}", ""), "tiny", "prompt.image_placeholder", "not empty"),
        (with(&t, "{question}", "{question}"), "tiny", "prompt.image_placeholder", "no braces"),
        (
            with(&text("tiny-xattn"), "<image>{question}", "<image>"),
            "tiny-xattn",
            "prompt.image_placeholder",
            "cross_attention",
        ),
        (with(&text("tiny-blind"), "<image>{question}", "<image>"), "tiny-blind", "prompt.image_placeholder", "`none`"),
    ] {
        assert_ne!(yaml, t);
        let (got, message) = refusal(parse(name, &yaml));
        assert_eq!(got, field, "{message}");
        assert!(message.contains(words), "{field}: {message}");
    }
    Ok(())
}

#[test]
fn every_shipped_manifest_reads_as_a_zoo_variant_and_writes_back_without_the_new_keys() -> Result<()> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (zoo, min) in [(repo.clone(), 20), (root(), 3)] {
        let mut here: Vec<PathBuf> = std::fs::read_dir(zoo.join("variants"))
            .map_err(|e| Error::io("listing", zoo.join("variants"), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        assert!(here.len() >= min, "{}: {} manifests", zoo.display(), here.len());
        here.sort();
        files.extend(here.into_iter().map(|f| (f, zoo.clone())));
    }
    for (file, zoo) in &files {
        let m = Manifest::from_file(file, zoo)?;
        let a = &m.axes;
        assert_eq!(m.origin, Origin::Zoo, "{}", file.display());
        assert!(a.backbone.family.known().is_some() && a.backbone.size.known().is_some());
        assert!(a.backbone.flavour.is_some() && a.adapter.is_some() && a.freeze.is_some() && a.data.is_some());
        assert!(a.prompts.is_some() && a.quantization.is_some());
        assert!(m.prompt.add_bos && m.prompt.image_placeholder.is_none());
        // The shipped zoo's decoders are GroupQueryAttention graphs over one K/V buffer
        // (`python -m lynx_export gqa`): the LLaMA ones derive positions, GPT-2 keeps the input for
        // its learned positions; batches are padded on the right, but for the dynamically
        // quantised decoder, whose batch shares one quantisation scale. The fixture zoo keeps the
        // defaults.
        let gqa = zoo == &repo;
        let llama = a.backbone.family == Open::Known(BackboneFamily::Llama);
        let quantised = a.quantization == Some(Quantization::Int8Dynamic);
        let right = if quantised { PaddingSide::None } else { PaddingSide::Right };
        let (positions, update, padding) = match gqa {
            true if llama => (PositionIds::Derived, KvUpdate::SharedBuffer, right),
            true => (PositionIds::Input, KvUpdate::SharedBuffer, right),
            false => (PositionIds::Input, KvUpdate::Concat, PaddingSide::Left),
        };
        let cache = KvCache { update, ..KvCache::default() };
        assert_eq!(
            (m.model.position_ids, &m.kv_cache, m.prompt.padding),
            (positions, &cache, padding),
            "{}",
            file.display()
        );
        // `show --format yaml` writes the file's keys, and none of the new ones it lacks.
        let written = yaml::to_string(&read_raw(file)?)?;
        for key in ["origin:", "image_placeholder:", "add_bos:"] {
            assert!(!written.contains(key), "{}: `{key}` written back", file.display());
        }
        assert_eq!(written.contains("position_ids: derived"), gqa && llama, "{}", file.display());
        assert_eq!(written.contains("kv_cache:"), gqa, "{}", file.display());
        let again: RawManifest = yaml::parse(&written, Path::new("again.yaml"))?;
        assert_eq!(yaml::to_string(&again)?, written, "{}", file.display());
    }
    Ok(())
}
