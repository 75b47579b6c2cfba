"""The zoo in the ecosystem's tools (issue 15, item 5): the shipped tokenizer loads in transformers'
AutoTokenizer and renders the runtime's prompts; every shipped graph says what it is in its ONNX
metadata, which onnx and ONNX Runtime read; stamping a zoo changes no number and is deterministic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from tokenizers import Tokenizer

from lynx_export import __version__, ecosystem
from lynx_export import onnx_io as O
from lynx_export.build import EXPORT_REVISION
from lynx_export.ecosystem import GraphOwner, chat_template, io_roles, stamp_zoo
from lynx_export.manifest import PROMPT, TOKENS
from lynx_export.recipes import PROMPT_TEMPLATE

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((REPO / "variants").glob("*.yaml"))
DOCS = {p.stem: yaml.safe_load(p.read_text()) for p in MANIFESTS}


@pytest.fixture(scope="module")
def hf_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(REPO / "onnx"))


def test_the_shipped_zoo_is_a_zoo_of_25_with_one_tokenizer():
    assert len(DOCS) == 25
    assert {d["tokenizer"]["path"] for d in DOCS.values()} == {"onnx/tokenizer.json"}
    assert all((d["tokenizer"]["bos"], d["tokenizer"]["eos"], d["tokenizer"]["pad"]) == ("<s>", "</s>", "<pad>")
               for d in DOCS.values())
    # right-padded batches, but for the dynamically quantised decoder (manifest.prompt)
    assert all(d["prompt"] == {**PROMPT, "padding": "none" if d["axes"]["quantization"] != "none" else "right"}
               for d in DOCS.values())


def test_autotokenizer_loads_the_zoo_folder_and_encodes_like_tokenizers(hf_tokenizer):
    raw = Tokenizer.from_file(str(REPO / "onnx" / "tokenizer.json"))
    questions = [json.loads(line)["question"] for line in (REPO / "data/test/annotations.jsonl").read_text().splitlines()]
    texts = questions[:60] + ["User: What colour is it?\nBot: red", "  two  spaces, caf\u00e9 and \u4e2d\u6587 ", ""]
    for text in texts:
        want = raw.encode(text).ids
        assert hf_tokenizer(text)["input_ids"] == want, text
        assert hf_tokenizer.encode(text, add_special_tokens=False) == want
        assert hf_tokenizer.decode(want) == raw.decode(want), text
    for field, token in TOKENS.items():
        assert getattr(hf_tokenizer, f"{field}_token") == token
        assert getattr(hf_tokenizer, f"{field}_token_id") == raw.token_to_id(token)
    assert hf_tokenizer.unk_token == "<unk>" and hf_tokenizer.padding_side == "right"
    # a right-padded batch, as the runtime pads for the zoo's decoders
    batch = hf_tokenizer(["What shape?", "How many circles are there?"], padding=True)
    assert batch["input_ids"][0][-1] == raw.token_to_id("<pad>") and batch["attention_mask"][0][-1] == 0


@pytest.mark.parametrize("name", sorted(DOCS))
def test_apply_chat_template_gives_the_runtimes_prompt_of_every_golden_item(hf_tokenizer, name):
    """The goldens hold the prompt ids the exporter built and the Rust runtime must build
    (tests/integration/runtime_parity.rs holds it to them); the chat template gives the same ids and text."""
    doc = DOCS[name]
    goldens = json.loads((REPO / doc["goldens"]["path"]).read_text())
    for item in goldens["items"]:
        q = item["question"]
        chat = [{"role": "user", "content": q}]
        text = hf_tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        assert text == "<s>" + doc["prompt"]["template"].format(question=q)
        ids = hf_tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True)["input_ids"]
        assert ids == item["input_ids"][0], q
        # a processor's message: the picture's place is the runtime's, the text is the same
        parts = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}]
        assert hf_tokenizer.apply_chat_template(parts, tokenize=False, add_generation_prompt=True) == text


def test_an_answer_turn_is_what_the_zoo_trains_on(hf_tokenizer):
    chat = [{"role": "user", "content": "What shape?"}, {"role": "assistant", "content": "square"},
            {"role": "user", "content": "And the colour?"}]
    text = hf_tokenizer.apply_chat_template(chat, tokenize=False)
    assert text == "<s>User: What shape?\nBot: square</s>User: And the colour?\nBot:"
    with pytest.raises(Exception, match="not `system`"):
        hf_tokenizer.apply_chat_template([{"role": "system", "content": "x"}], tokenize=False)


def test_a_template_without_bos_and_with_quotes_and_braces_renders_verbatim():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = 'Q "{question}" {{x}} {%- \\n\n<|im_end|> caf\u00e9 \U0001F600\nA:'
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # as transformers renders
    question = "hi {% raw %} 'there'"
    out = env.from_string(chat_template(template, add_bos=False)).render(
        messages=[{"role": "user", "content": question}], bos_token="<s>", eos_token="</s>")
    assert out == template.replace("{question}", question)
    with pytest.raises(ValueError, match="exactly one"):
        chat_template("no question here")


def test_io_roles_name_every_tensor_and_refuse_an_unknown_one():
    names = ["inputs_embeds", "attention_mask", "past_key_values.1.key", "past_key_values.0.key",
             "past_key_values.0.value", "past_key_values.1.value", "cross_key_values.0.key", "cross_key_values.0.value"]
    assert io_roles(names) == {
        "inputs_embeds": "inputs_embeds", "attention_mask": "attention_mask",
        "past.key": ["past_key_values.0.key", "past_key_values.1.key"],
        "past.value": ["past_key_values.0.value", "past_key_values.1.value"],
        "cross.key": ["cross_key_values.0.key"], "cross.value": ["cross_key_values.0.value"]}
    # a manifest's own kv_cache names
    assert io_roles(["cache.0.key"], {"past": "cache.{i}.{kv}"}) == {"past.key": ["cache.0.key"]}
    with pytest.raises(ValueError, match="`hidden_states` has no role"):
        io_roles(["hidden_states"])
    with pytest.raises(ValueError, match="not 0..1"):
        io_roles(["past_key_values.0.key", "past_key_values.2.key"])


def test_every_shipped_graph_says_what_it_is_in_onnx_and_onnxruntime():
    variants = set(DOCS)
    seen: dict[str, tuple[str, dict]] = {}
    for name, doc in DOCS.items():
        for role, g in doc["graphs"].items():
            seen.setdefault(g["path"], (role, g))
            assert seen[g["path"]][0] == role
    assert len(seen) == 56
    for rel, (role, g) in sorted(seen.items()):
        model = onnx.load(str(REPO / rel), load_external_data=False)
        assert (model.producer_name, model.producer_version) == ("lynx-zoo exporter", __version__), rel
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["lynx.producer"] == f"lynx-zoo exporter {__version__}"
        assert meta["lynx.role"] == role, rel
        stem = Path(rel).name.removesuffix(".onnx")
        owner = stem.rsplit(".", 1)[0]
        if owner in variants:  # NAME.ROLE.onnx: the variant's own
            assert meta["lynx.variant"] == owner and "lynx.shared" not in meta, rel
        else:  # the frozen ViT of a resolution, a frozen backbone's embedding
            assert meta["lynx.shared"] == owner and "lynx.variant" not in meta, rel
            assert owner.startswith("vit-") or role == "embed", rel
        for side in ("inputs", "outputs"):
            roles = json.loads(meta[f"lynx.{side}"])
            listed = [n for v in roles.values() for n in (v if isinstance(v, list) else [v])]
            assert sorted(listed) == sorted(t["name"] for t in g[side]), (rel, side)
        if role == "vision":
            assert json.loads(meta["lynx.inputs"]) == {"pixel_values": "pixel_values"}
        if role == "decoder":
            ins = json.loads(meta["lynx.inputs"])
            assert ins["inputs_embeds"] == "inputs_embeds" and ins["past.key"][0] == "past_key_values.0.key"
        # ONNX Runtime reads the same, with the graph's weights beside it
        session = ort.InferenceSession(str(REPO / rel), providers=["CPUExecutionProvider"])
        got = session.get_modelmeta()
        assert got.producer_name == "lynx-zoo exporter"
        assert {k: v for k, v in got.custom_metadata_map.items() if k.startswith("lynx.")} == \
            {k: v for k, v in meta.items() if k.startswith("lynx.")}


def _strip(path: Path):
    """The graph at `path` as it was before the metadata (torch's producer, no lynx.* keys)."""
    model = onnx.load(str(path), load_external_data=False)
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith("lynx.")]
    del model.metadata_props[:]
    for k, v in kept:
        e = model.metadata_props.add()
        e.key, e.value = k, v
    model.producer_name, model.producer_version = "pytorch", "2.11.0"
    path.write_bytes(model.SerializeToString())


def _outputs(path: Path, seed: int = 0) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    feeds = {}
    # total = past + seq; a GroupQueryAttention decoder takes a prompt after a past only in a
    # batch of one, so it gets a decode step
    gqa = any(n.op_type == "GroupQueryAttention" for n in onnx.load(str(path), load_external_data=False).graph.node)
    for i in session.get_inputs():
        sizes = {"batch": 2, "seq": 1, "past": 2, "total": 3} if gqa else {"batch": 2, "seq": 3, "past": 2, "total": 5}
        shape = [d if isinstance(d, int) else sizes.get(d, 2) for d in i.shape]
        feeds[i.name] = (np.ones(shape, np.int64) if "int64" in i.type else rng.standard_normal(shape).astype(np.float32))
    if "input_ids" in feeds:
        feeds["input_ids"] = np.array([[1, 5, 6], [7, 9, 2]], np.int64)
    return session.run(None, feeds)


def test_stamping_a_zoo_of_revision_3_gives_the_shipped_files_and_changes_no_number(tmp_path):
    """lynx and lynx-int8 (float and quantised decoders, own and shared graphs) with their metadata
    stripped and their manifests as revision 3 wrote them: `ecosystem` stamps them back to the
    shipped bytes, every output bit for bit what the unstamped graph gives, and once only."""
    zoo = tmp_path / "zoo"
    (zoo / "variants").mkdir(parents=True)
    (zoo / "onnx" / "goldens").mkdir(parents=True)
    old_sha = {}
    for name in ("lynx", "lynx-int8"):
        doc = DOCS[name]
        files = [doc["tokenizer"], doc["goldens"]] + [f for g in doc["graphs"].values() for f in [g] + g["external_data"]]
        for f in files:
            if not (zoo / f["path"]).exists():  # shared files once (stripped below)
                shutil.copyfile(REPO / f["path"], zoo / f["path"])
        text = (REPO / "variants" / f"{name}.yaml").read_text().replace(f"export_revision: {EXPORT_REVISION}", "export_revision: 3")
        for g in doc["graphs"].values():
            path = zoo / g["path"]
            if g["sha256"] not in old_sha:
                _strip(path)
                old_sha[g["sha256"]] = O.sha256_file(path)
            text = text.replace(g["sha256"], old_sha[g["sha256"]])
        (zoo / "variants" / f"{name}.yaml").write_text(text)
    before = {p: _outputs(p) for p in sorted((zoo / "onnx").glob("*.onnx"))}
    # the shared ViT and backbone embedding, lynx's connector (int8 uses it too), both decoders
    assert sorted(p.name for p in before) == ["llama-chat-small.embed.onnx", "lynx-int8.decoder.onnx",
                                              "lynx.connector.onnx", "lynx.decoder.onnx", "vit-128.onnx"]

    done = stamp_zoo(zoo, log=lambda m: None)
    assert (len(done.graphs), len(done.manifests), done.skipped) == (5, 2, [])
    assert {p.name for p in done.tokenizer_files} == set(ecosystem.TOKENIZER_FILES)
    for path, outs in before.items():
        assert path.read_bytes() == (REPO / "onnx" / path.name).read_bytes(), f"{path.name}: not the shipped bytes"
        for a, b in zip(outs, _outputs(path)):
            assert np.array_equal(a, b), path.name
    for name in ("lynx", "lynx-int8"):  # the shipped manifests and checksums; the revision the metadata came with
        # (the shipped decoders are revision 5's, GroupQueryAttention: `gqa` rewrites them, not `ecosystem`)
        shipped = (REPO / "variants" / f"{name}.yaml").read_text().replace(
            f"export_revision: {EXPORT_REVISION}", f"export_revision: {ecosystem.METADATA_REVISION}")
        assert (zoo / "variants" / f"{name}.yaml").read_text() == shipped
    for f in ecosystem.TOKENIZER_FILES:
        assert (zoo / "onnx" / f).read_text() == (REPO / "onnx" / f).read_text()
    again = stamp_zoo(zoo, log=lambda m: None)
    assert (again.graphs, again.tokenizer_files, again.manifests) == ([], [], [])


def test_stamping_leaves_imported_variants_and_refuses_a_tokenizer_with_two_prompts(tmp_path):
    zoo = tmp_path / "zoo"
    shutil.copytree(REPO / "tests/fixtures/runtime/open-zoo", zoo)
    before = {p: p.read_bytes() for p in zoo.rglob("*") if p.is_file()}
    done = stamp_zoo(zoo, log=lambda m: None)
    assert done.skipped == ["llava-tiny"] and not done.graphs and not done.tokenizer_files
    assert before == {p: p.read_bytes() for p in zoo.rglob("*") if p.is_file()}

    two = tmp_path / "two"
    (two / "variants").mkdir(parents=True)
    (two / "onnx").mkdir()
    shutil.copyfile(REPO / "onnx/tokenizer.json", two / "onnx/tokenizer.json")
    for name, template in (("a", PROMPT_TEMPLATE), ("b", "Q: {question}\nA:")):
        (two / "variants" / f"{name}.yaml").write_text(yaml.safe_dump({
            "name": name, "graphs": {}, "tokenizer": {"path": "onnx/tokenizer.json", **TOKENS},
            "prompt": {"template": template, "padding": "left"}}))
    with pytest.raises(ValueError, match="cannot hold both"):
        stamp_zoo(two, log=lambda m: None)


def test_the_build_revision_has_the_metadata():
    assert EXPORT_REVISION >= ecosystem.METADATA_REVISION
    assert all(d["provenance"]["export_revision"] == EXPORT_REVISION for d in DOCS.values())


def test_a_graph_belongs_to_one_owner():
    assert ecosystem.owner_of("onnx/lynx.connector.onnx", {"lynx", "lynx-int8"}) == GraphOwner(variant="lynx")
    assert ecosystem.owner_of("onnx/vit-128.onnx", {"lynx"}) == GraphOwner(shared="vit-128")
    assert ecosystem.owner_of("onnx/llama-chat-small.embed.onnx", {"lynx"}) == GraphOwner(shared="llama-chat-small")
    with pytest.raises(ValueError, match="one variant or one shared"):
        ecosystem.graph_metadata("vision", GraphOwner(), ["pixel_values"], ["image_features"])
    with pytest.raises(ValueError, match="graph role `projector`"):
        ecosystem.graph_metadata("projector", GraphOwner(variant="x"), ["image_features"], ["visual_embeds"])
