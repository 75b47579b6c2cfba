"""`python -m lynx_export import hf`: tiny seeded random-init LLaVA checkpoints, built here with
transformers (nothing downloaded), imported, then answered by the Rust runtime and by transformers.

Three checkpoints cover the supported families: a CLIP tower + Llama (LLaVA-1.5's chat template,
BOS from the tokenizer, CLIP's shortest-side resize and centre crop), a SigLIP tower + Qwen2 (two
feature layers concatenated, the `full` strategy, ChatML without BOS, SigLIP's stretch resize) and a
CLIP tower + Mistral whose sliding window is shorter than the prompt. For each: every graph and the
prefill against transformers within 1e-4, and `lynx-zoo ask --greedy` against
`LlavaForConditionalGeneration.generate(do_sample=False)` on pictures of several sizes and questions.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

transformers = pytest.importorskip("transformers")

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

from lynx_export.data import repo_root  # noqa: E402
from lynx_export.importers import CheckpointError  # noqa: E402
from lynx_export.importers.hf import ImportOptions, import_hf  # noqa: E402
from lynx_export.importers.seeded_llava import Sizes, Spec, build_checkpoint  # noqa: E402
from test_manifest_schema import validate  # noqa: E402

SIDE, PATCH, VOCAB = Sizes().side, Sizes().patch, Sizes().vocab
QUESTIONS = ["what colour is the block?", "how many shapes are there?", "describe the picture"]
MAX_NEW = 8

SPECS = [
    Spec("clip-llama", "clip", "llama", -2, "default", kv_heads=2),
    Spec("siglip-qwen2", "siglip", "qwen2", [-2, -1], "full", kv_heads=1),
    Spec("clip-mistral", "clip", "mistral", -1, "default", kv_heads=2, window=24),
]


def pictures(folder: Path) -> list[Path]:
    """Seeded pictures: two at the tower's side (no resize), a taller one whose colours change only
    from row to row and a wider one whose colours change only from column to column.

    The taller and wider ones are resized (their longer side rounded down as transformers does:
    52 x 40 -> 41 x 32, 45 x 60 -> 32 x 42) and centre-cropped by CLIP's processor, stretched by
    SigLIP's. transformers' PIL backend resizes in two 8-bit passes, rounding in between; the runtime
    (as PyTorch and torchvision) rounds once at the end. A picture that varies along one axis only
    gets the same pixels from both (one pass is exact); one that varies along both may differ by one
    8-bit level here and there, which can flip a random model's closest argmax -- as it can between
    transformers' own PIL and torchvision backends.
    """
    rng = np.random.default_rng(15)
    paths = []
    for i, (h, w, varies) in enumerate([(SIDE, SIDE, "both"), (SIDE, SIDE, "both"), (52, 40, "rows"),
                                        (45, 60, "columns")]):
        yy, xx = np.mgrid[0:h, 0:w]
        if varies == "both":
            img = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 127 // (h + w)) + 64], -1)
            for _ in range(2):
                y, x = rng.integers(0, h - 12), rng.integers(0, w - 12)
                img[y:y + 12, x:x + 12] = rng.integers(0, 256, 3)
        else:
            n = h if varies == "rows" else w
            bands = rng.integers(0, 256, (n, 3))
            bands[n // 3:n // 2] = rng.integers(0, 256, 3)  # a block of one colour
            img = bands[yy] if varies == "rows" else bands[xx]
        path = folder / f"picture-{i}.png"
        Image.fromarray(img.astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def lynx_zoo() -> Path:
    exe = Path(os.environ.get("LYNX_ZOO_BIN") or repo_root() / "target" / "release" / "lynx-zoo")
    if not exe.is_file():
        pytest.skip(f"no runtime binary at `{exe}`: build it with `cargo build --release` (or set LYNX_ZOO_BIN)")
    return exe


def ask(exe: Path, zoo: Path, name: str, image: Path, question: str) -> list[int]:
    done = subprocess.run([str(exe), "ask", name, "--zoo", str(zoo), "--image", str(image), "--question", question,
                           "--greedy", "--max-new-tokens", str(MAX_NEW), "--format", "json", "--threads", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["tokens"]


def transformers_answer(checkpoint: Path, model, processor, image: Path, question: str, eos: int):
    """Greedy tokens of `generate`, and the prefill's last logits, as a transformers user gets them."""
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
    with Image.open(image) as im:
        bos = processor.tokenizer.bos_token
        inputs = processor(images=im.convert("RGB"), text=prompt, return_tensors="pt",
                           add_special_tokens=not (bos and prompt.startswith(bos)))
    with torch.no_grad():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW, eos_token_id=eos, pad_token_id=eos)
        logits = model(**inputs).logits[0, -1].numpy()
    tokens = out[0, inputs["input_ids"].shape[1]:].tolist()
    if eos in tokens:  # the runtime does not emit EOS
        tokens = tokens[:tokens.index(eos)]
    return tokens, logits, inputs


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on one thread: with another job on the 2 cores, two threads make each of these
    small matrix products wait for the other thread (measured: a generate call 0.04 s vs 1.8 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The three checkpoints, built and imported once into one zoo by the command line
    (`python -m lynx_export import hf DIR --name NAME --zoo ROOT`, in this process)."""
    from lynx_export.__main__ import main

    root = tmp_path_factory.mktemp("import-hf")
    zoo = root / "zoo"
    done = {}
    for spec in SPECS:
        folder = build_checkpoint(spec, root / "checkpoints")
        t = time.time()
        assert main(["import", "hf", str(folder), "--name", spec.name, "--zoo", str(zoo), "--max-new-tokens",
                     str(MAX_NEW), "--threads", "1"]) == 0
        done[spec.name] = (folder, zoo / "variants" / f"{spec.name}.yaml", time.time() - t)
    return zoo, done, pictures(root)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_manifest_is_an_imported_variant_the_schema_and_check_accept(imported, spec):
    zoo, done, _ = imported
    folder, manifest, seconds = done[spec.name]
    doc = yaml.safe_load(manifest.read_text())
    validate(doc)
    cfg = json.loads((folder / "config.json").read_text())
    import hashlib
    assert doc["origin"] == {"kind": "imported", "source": spec.name, "revision": None,
                             "config_sha256": hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()}
    assert doc["axes"]["connector"] == {"kind": "projector"} and doc["axes"]["backbone"]["family"] == spec.text
    m = doc["model"]
    assert (m["heads"], m["kv_heads"], m["layers"], m["vocab_size"]) == (4, spec.kv_heads, 2, VOCAB)
    layers = 1 if isinstance(spec.feature_layer, int) else len(spec.feature_layer)
    assert (m["vision_dim"], m["patches"]) == (32 * layers, (SIDE // PATCH) ** 2)
    assert doc["axes"]["visual_tokens"] == cfg["image_seq_length"] == m["patches"]
    decoder = {t["name"]: t for t in doc["graphs"]["decoder"]["inputs"]}
    assert decoder["past_key_values.1.value"]["shape"] == ["batch", spec.kv_heads, "past", 12]
    assert "position_ids" in decoder and m["position_ids"] == "input"
    p, prompt = doc["preprocess"], doc["prompt"]
    if spec.vision == "clip":
        assert (p["crop"], p["mean"][0], p["std"][2]) == ("center", 0.48145466, 0.27577711)
    else:
        assert (p["crop"], p["mean"], p["std"]) == ("none", [0.5] * 3, [0.5] * 3)
    if spec.text == "qwen2":  # ChatML, no BOS
        assert prompt == {"template": "<|im_start|>user <image>\n{question}<|im_end|>\n<|im_start|>assistant\n",
                          "padding": "left", "image_placeholder": "<image>", "add_bos": False}
        assert doc["tokenizer"]["eos"] == "<|im_end|>"
    else:  # LLaVA-1.5, BOS from the tokenizer's post-processor
        assert prompt == {"template": "USER: <image>\n{question} ASSISTANT:", "padding": "left",
                          "image_placeholder": "<image>"}
        assert (doc["tokenizer"]["bos"], doc["tokenizer"]["eos"]) == ("<s>", "</s>")
    assert doc["tokenizer"]["sha256"] == hashlib.sha256((folder / "tokenizer.json").read_bytes()).hexdigest()
    assert all(v <= 1e-4 for v in doc["provenance"]["parity"].values()), doc["provenance"]["parity"]
    assert seconds < 60, f"import took {seconds:.0f}s"  # about 5 s on 2 busy cores
    exe = lynx_zoo()
    done_check = subprocess.run([str(exe), "check", spec.name, "--zoo", str(zoo)], capture_output=True, text=True)
    assert done_check.returncode == 0, done_check.stderr


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_imported_folder_loads_in_autotokenizer_and_its_graphs_say_what_they_are(imported, spec):
    """The tokenizer files beside the copied tokenizer.json render the manifest's prompt as the
    runtime encodes it (BOS or none, the placeholder in place), and every graph carries its
    producer and lynx.* metadata (ecosystem.py)."""
    from transformers import AutoTokenizer

    from lynx_export.ecosystem import read_metadata

    zoo, done, _ = imported
    doc = yaml.safe_load(done[spec.name][1].read_text())
    out = zoo / "onnx" / spec.name
    tok: Any = AutoTokenizer.from_pretrained(str(out))  # apply_chat_template's types are narrower than its use
    raw = Tokenizer.from_file(str(out / "tokenizer.json"))
    add_bos, bos = doc["prompt"].get("add_bos", True), doc["tokenizer"]["bos"]
    assert (tok.eos_token, tok.pad_token) == (doc["tokenizer"]["eos"], doc["tokenizer"]["pad"])
    for q in QUESTIONS:
        chat = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}]
        body = doc["prompt"]["template"].replace("{question}", q)
        assert tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) == (bos if add_bos else "") + body
        want = ([raw.token_to_id(bos)] if add_bos else []) + raw.encode(body, add_special_tokens=False).ids
        assert tok.apply_chat_template(chat, add_generation_prompt=True)["input_ids"] == want
    for role, g in doc["graphs"].items():
        meta = read_metadata(zoo / g["path"])
        assert (meta["lynx.role"], meta["lynx.variant"]) == (role, spec.name), g["path"]
        inputs = json.loads(meta["lynx.inputs"])
        assert sorted(n for v in inputs.values() for n in (v if isinstance(v, list) else [v])) == \
            sorted(t["name"] for t in g["inputs"])
    assert json.loads(read_metadata(out / "decoder.onnx")["lynx.inputs"])["past.key"][1] == "past_key_values.1.key"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_lynx_zoo_ask_answers_as_transformers_generate(imported, spec, tmp_path):
    """Greedy tokens of the Rust runtime on the imported graphs = transformers' generate on the
    checkpoint, for every picture and question, one at a time (`ask`) and in left-padded batches
    of mixed prompts (`eval --batch 4`); the exported prefill's logits within 1e-4."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    zoo, done, images = imported
    folder, manifest, _ = done[spec.name]
    exe = lynx_zoo()
    model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(folder)
    eos = processor.tokenizer.eos_token_id
    sessions = OnnxPipeline(zoo, yaml.safe_load(manifest.read_text()))
    worst, items, differ = 0.0, [], []
    for image in images:
        for question in QUESTIONS if image == images[0] else QUESTIONS[:2]:
            want, logits, inputs = transformers_answer(folder, model, processor, image, question, eos)
            worst = max(worst, float(np.abs(sessions.last_logits(inputs, processor.image_token_id) - logits).max()))
            got = ask(exe, zoo, spec.name, image, question)
            items.append((image, question, want))
            if got != want:
                differ.append(f"{image.name} `{question}`: lynx-zoo {got} vs transformers {want}")
    print(f"{spec.name}: {len(items) - len(differ)}/{len(items)} greedy answers agree, "
          f"max |logits diff| {worst:.2e}")
    assert not differ, "\n".join(differ)
    assert worst <= 1e-4, f"prefill logits differ by {worst:.2e}"
    assert all(want for _, _, want in items)  # answers to compare, not EOS at once
    # the picture reaches the answer: one question, other pictures, other answers
    assert len({tuple(want) for _, q, want in items if q == QUESTIONS[0]}) > 1

    # the same items through `eval` in batches of 4: left padding, pictures at other offsets
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"dataset": "import-hf", "question": q, "answer": ["-"], "index": i,
                                         "image": str(image)}) + "\n" for i, (image, q, _) in enumerate(items)))
    run = subprocess.run([str(exe), "eval", spec.name, "--zoo", str(zoo), "--bench", str(bench), "--batch", "4",
                          "--max-new-tokens", str(MAX_NEW), "--out", str(tmp_path / "eval"), "--threads", "1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = (tmp_path / "eval" / spec.name / "predictions.jsonl").read_text().splitlines()
    got_text = [json.loads(line)["prediction"] for line in lines]
    want_text = [processor.tokenizer.decode(want, skip_special_tokens=True).strip() for _, _, want in items]
    assert got_text == want_text


class OnnxPipeline:
    """The imported graphs in onnxruntime, run as the runtime runs a placeholder prompt: the
    processor's pixel values and input ids (the image token repeated), last-position logits."""

    def __init__(self, zoo: Path, doc: dict):
        import onnxruntime as ort

        self.doc = doc
        self.s = {k: ort.InferenceSession(str(zoo / g["path"]), providers=["CPUExecutionProvider"])
                  for k, g in doc["graphs"].items()}

    def last_logits(self, inputs, image: int) -> np.ndarray:
        ids = inputs["input_ids"][0].tolist()
        pixels = inputs["pixel_values"].numpy()
        k = ids.index(image)
        text = [x for x in ids if x != image]
        feats = self.s["vision"].run(None, {"pixel_values": pixels})[0]
        visual = self.s["connector"].run(None, {"image_features": feats[:, None]})[0]
        assert visual.shape[1] == ids.count(image)
        emb = self.s["embed"].run(None, {"input_ids": np.array([text], np.int64)})[0]
        seq = np.concatenate([emb[:, :k], visual, emb[:, k:]], 1)
        m = self.doc["model"]
        feed = {"inputs_embeds": seq, "attention_mask": np.ones((1, seq.shape[1]), np.int64),
                "position_ids": np.arange(seq.shape[1], dtype=np.int64)[None]}
        for i in range(m["layers"]):
            for kv in ("key", "value"):
                feed[f"past_key_values.{i}.{kv}"] = np.zeros((1, m["kv_heads"], 0, m["head_dim"]), np.float32)
        return self.s["decoder"].run(["logits"], feed)[0][0, -1]


def test_a_checkpoint_of_another_architecture_is_refused_with_the_file_and_field(tmp_path):
    folder = tmp_path / "qwen2-vl"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["Qwen2VLForConditionalGeneration"],
                                                    "model_type": "qwen2_vl"}))
    with pytest.raises(CheckpointError) as e:
        import_hf(folder, ImportOptions(name="qwen2-vl", zoo=tmp_path / "zoo"), log=lambda m: None)
    message = str(e.value)
    assert "config.json" in message and "field `architectures`" in message
    assert "Qwen2VLForConditionalGeneration" in message and "LlavaForConditionalGeneration" in message
    assert not (tmp_path / "zoo").exists()  # nothing written

    # the same through the command line: exit 1, the message on stderr
    from lynx_export.__main__ import main
    assert main(["import", "hf", str(folder), "--name", "qwen2-vl", "--zoo", str(tmp_path / "zoo")]) == 1


def test_a_llava_with_an_unknown_tower_or_missing_files_is_refused(tmp_path, imported):
    from lynx_export.__main__ import main

    zoo, done, _ = imported
    source, manifest, _ = done["clip-llama"]
    before = manifest.read_bytes()
    # a variant of that name is there: usage error (exit 2) before anything is read or written
    assert main(["import", "hf", str(source), "--name", "clip-llama", "--zoo", str(zoo)]) == 2
    assert manifest.read_bytes() == before
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for f in source.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((folder / "config.json").read_text())
    cfg["vision_config"]["model_type"] = "pixtral"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"field `vision_config.model_type`: `pixtral` is not supported"):
        import_hf(folder, ImportOptions(name="x", zoo=tmp_path / "zoo"), log=lambda m: None)
    (folder / "config.json").write_bytes((source / "config.json").read_bytes())
    (folder / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match=r"tokenizer.json`: missing"):
        import_hf(folder, ImportOptions(name="x", zoo=tmp_path / "zoo"), log=lambda m: None)
    # pad-to-square before the resize: no manifest preprocessing does that
    (folder / "tokenizer.json").write_bytes((source / "tokenizer.json").read_bytes())
    processor = json.loads((folder / "processor_config.json").read_text())
    processor["image_processor"]["do_pad"] = True
    (folder / "processor_config.json").write_text(json.dumps(processor))
    with pytest.raises(CheckpointError, match=r"processor_config.json`: field `do_pad`"):
        import_hf(folder, ImportOptions(name="x", zoo=tmp_path / "zoo"), log=lambda m: None)
    assert not (tmp_path / "zoo").exists()


def test_a_template_given_in_place_of_the_chat_template_is_held_to_the_placeholder(imported):
    from lynx_export.importers.hf import read_checkpoint, text_spec

    _, done, _ = imported
    ckpt = read_checkpoint(done["clip-llama"][0])
    spec = text_spec(ckpt, "Q: <image> {question}\nA:")
    assert spec.prompt == {"template": "Q: <image> {question}\nA:", "padding": "left", "image_placeholder": "<image>"}
    with pytest.raises(CheckpointError, match=r"(?s)`--template`: .* must hold `\{question\}` and `<image>` once each"):
        text_spec(ckpt, "Q: {question}\nA:")


def test_a_hub_cache_snapshot_names_its_repository_and_commit(tmp_path):
    from lynx_export.importers.hf import hub_identity

    snapshot = tmp_path / "models--llava-hf--llava-1.5-7b-hf" / "snapshots" / "8c85e9a4d626b7b908448be32c1ba5ad79b95e76"
    assert hub_identity(snapshot) == ("llava-hf/llava-1.5-7b-hf", "8c85e9a4d626b7b908448be32c1ba5ad79b95e76")
    assert hub_identity(tmp_path / "my-llava") == ("my-llava", None)


def test_a_padded_row_keeps_its_sliding_window(imported):
    """Mistral's window (24) is shorter than these 30 tokens, and a left-padded row of a batch
    still sees the keys it sees alone (the runtime promises batches answer as single questions)."""
    import onnxruntime as ort

    zoo, done, _ = imported
    doc = yaml.safe_load(done["clip-mistral"][1].read_text())
    m = doc["model"]
    decoder = ort.InferenceSession(str(zoo / doc["graphs"]["decoder"]["path"]), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    row = rng.normal(size=(1, 30, m["hidden"])).astype(np.float32)

    def last_logits(embeds, mask):
        feed = {"inputs_embeds": embeds, "attention_mask": mask,
                "position_ids": np.clip(mask.cumsum(-1) - 1, 0, None)}
        for i in range(m["layers"]):
            for kv in ("key", "value"):
                feed[f"past_key_values.{i}.{kv}"] = np.zeros((len(embeds), m["kv_heads"], 0, m["head_dim"]),
                                                             np.float32)
        return decoder.run(["logits"], feed)[0][:, -1]

    alone = last_logits(row, np.ones((1, 30), np.int64))[0]
    batch = np.concatenate([np.concatenate([np.zeros((1, 6, m["hidden"]), np.float32), row], 1),
                            rng.normal(size=(1, 36, m["hidden"])).astype(np.float32)])
    mask = np.ones((2, 36), np.int64)
    mask[0, :6] = 0
    padded = last_logits(batch, mask)[0]
    assert np.abs(padded - alone).max() < 1e-4
