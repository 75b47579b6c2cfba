"""`lynx-zoo import genai|optimum DIR`: tiny seeded random-init checkpoints built here with
transformers (nothing downloaded), turned into an onnxruntime-genai folder by its model builder and
into an Optimum export, imported by the Rust CLI, then answered by `lynx-zoo ask` and held to
onnxruntime-genai's own generator and to transformers' `generate(do_sample=False)`.

Two checkpoints: a Llama (grouped-query attention, a chat template that writes BOS itself and calls
Python string methods) and a Qwen2 (one K/V head, ChatML, no BOS, tied embeddings). Four routes:

  genai           builder `-p fp32` without `exclude_embeds`: the importer splits the embedding out
  genai-xe        builder with `exclude_embeds` (Llama): the embed graph from `--embeddings CHECKPOINT`
  genai-int4      builder `-p int4` (Llama; MatMulNBits weights): held to onnxruntime-genai only, as
                  transformers runs the float32 weights
  optimum         `main_export(task="text-generation-with-past")`: the embedding split out

Optimum cannot share .venv with transformers 5.24 (export/requirements-optimum.txt): it runs in a
subprocess with .venv/optimum-overlay first on PYTHONPATH (transformers 4.57.6, optimum-onnx 0.1.0).
What a tool refuses is asserted with its message: Optimum refuses a LLaVA checkpoint, the genai
builder builds no vision graph, and the importer refuses a genai vision pipeline and a folder of
neither layout (docs/import.md names the way out of each).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

transformers = pytest.importorskip("transformers")
og = pytest.importorskip("onnxruntime_genai")

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from tokenizers import AddedToken, Tokenizer, processors  # noqa: E402

from lynx_export.data import repo_root  # noqa: E402
from test_manifest_schema import validate  # noqa: E402

# LLaVA-1.5's text template with the BOS written by the template itself (Llama-2 style), and
# Qwen2's ChatML; both call Python string methods, as real templates do
LLAMA_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ message['role'].upper() + ': ' }}"
                  "{{ message['content'].strip() }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")
CHATML_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}"
                   "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                   "{% endif %}")
VOCAB = 1040
QUESTIONS = ["what colour is the block?", "how many shapes are there?", "describe the picture", "hello"]
MAX_NEW = 8
CHECKPOINTS = {"llama": dict(kv_heads=2, tied=False), "qwen2": dict(kv_heads=1, tied=True)}
# variant name -> (checkpoint, route)
VARIANTS = {"genai-llama": ("llama", "genai"), "genai-xe-llama": ("llama", "genai-xe"),
            "genai-int4-llama": ("llama", "genai-int4"), "genai-qwen2": ("qwen2", "genai"),
            "optimum-llama": ("llama", "optimum"), "optimum-qwen2": ("qwen2", "optimum")}


def tokenizer(family: str):
    """The zoo's BPE (onnx/tokenizer.json) as a transformers fast tokenizer: Llama-style (BOS
    `<s>`, EOS `</s>`) or Qwen2-style (ChatML, EOS `<|im_end|>`, no BOS)."""
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_file(str(repo_root() / "onnx" / "tokenizer.json"))
    if family == "qwen2":
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<|im_start|>", "<|im_end|>")])
        hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<pad>")
        hf.chat_template = CHATML_TEMPLATE
        return hf
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                 unk_token="<unk>")
    hf.chat_template = LLAMA_TEMPLATE
    return hf


def build_checkpoint(family: str, folder: Path) -> Path:
    """A seeded random-init LlamaForCausalLM or Qwen2ForCausalLM with its tokenizer, as
    `save_pretrained` writes it."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(15)
    tok = tokenizer(family)
    spec = CHECKPOINTS[family]
    # a wider init than transformers' 0.02, so that the random model's logits are far apart
    kw: dict[str, Any] = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=spec["kv_heads"], vocab_size=VOCAB, max_position_embeddings=256,
                              initializer_range=0.2, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                              pad_token_id=tok.pad_token_id, tie_word_embeddings=spec["tied"])
    model = (LlamaForCausalLM(LlamaConfig(**kw)) if family == "llama" else Qwen2ForCausalLM(Qwen2Config(**kw))).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    out = folder / family
    model.save_pretrained(out)
    tok.save_pretrained(out)
    # transformers 5 names the class `TokenizersBackend`, which Optimum's transformers 4.57 cannot
    # load (it would then leave the tokenizer out of its export); both read this name
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return out


def build_llava(folder: Path) -> Path:
    """A tiny LLaVA checkpoint, only to show what Optimum and the genai builder say of it."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(15)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=16, patch_size=8, projection_dim=16)
    text = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=1, vocab_size=VOCAB)
    model = LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text, image_token_index=3))
    out = folder / "llava"
    model.save_pretrained(out)
    tokenizer("llama").save_pretrained(out)
    return out


def genai_build(checkpoint: Path, out: Path, exclude_embeds: bool, precision: str = "fp32") -> None:
    from lynx_export.bench_real import genai_build as build

    build(checkpoint, out, precision, exclude_embeds)


# Optimum, in its own interpreter: each job exports, or reports the tool's refusal as text
OPTIMUM_SCRIPT = """
import json, sys, traceback
from optimum.exporters.onnx import main_export
results = {}
for src, out, task in json.loads(sys.argv[1]):
    try:
        main_export(src, output=out, task=task, device="cpu", local_files_only=True)
        results[out] = None
    except Exception as e:
        results[out] = f"{type(e).__name__}: {e}"
print(json.dumps(results))
"""


def optimum_overlay() -> Path:
    overlay = Path(os.environ.get("LYNX_OPTIMUM_OVERLAY") or Path(sys.prefix) / "optimum-overlay")
    if not (overlay / "optimum").is_dir():
        pytest.fail(f"no Optimum overlay at `{overlay}`: `bash scripts/setup-python` installs it from "
                    "export/requirements-optimum.txt (Optimum needs transformers 4.57, .venv has 5.24)")
    return overlay


def start_optimum(jobs: list[tuple[Path, Path, str]]) -> subprocess.Popen:
    """`optimum.exporters.onnx.main_export(SRC, output=OUT, task=TASK)` for each job, in the background."""
    env = dict(os.environ, PYTHONPATH=str(optimum_overlay()), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.Popen([sys.executable, "-c", OPTIMUM_SCRIPT, json.dumps([[str(a), str(b), t] for a, b, t in jobs])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def lynx_zoo() -> Path:
    exe = Path(os.environ.get("LYNX_ZOO_BIN") or repo_root() / "target" / "release" / "lynx-zoo")
    if not exe.is_file():
        pytest.skip(f"no runtime binary at `{exe}`: build it with `cargo build --release` (or set LYNX_ZOO_BIN)")
    return exe


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(lynx_zoo()), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Both checkpoints, their genai folders and Optimum exports, every variant imported into one
    zoo by `lynx-zoo import` (the layout detected, or named)."""
    exe = lynx_zoo()
    root = tmp_path_factory.mktemp("import-ort")
    t0 = time.time()
    ckpt = {f: build_checkpoint(f, root / "checkpoints") for f in CHECKPOINTS}
    llava = build_llava(root / "checkpoints")
    task = "text-generation-with-past"
    optimum = start_optimum([(ckpt["llama"], root / "optimum-llama", task), (ckpt["qwen2"], root / "optimum-qwen2", task),
                             (llava, root / "optimum-llava", "image-text-to-text"),
                             (ckpt["llama"], root / "optimum-nocache", "text-generation")])
    genai_build(ckpt["llama"], root / "genai-llama", exclude_embeds=False)
    genai_build(ckpt["llama"], root / "genai-xe-llama", exclude_embeds=True)
    genai_build(ckpt["llama"], root / "genai-int4-llama", exclude_embeds=False, precision="int4")
    genai_build(ckpt["qwen2"], root / "genai-qwen2", exclude_embeds=False)
    builder_llava = None
    try:
        genai_build(llava, root / "genai-llava", exclude_embeds=False)
    except Exception as e:  # the builder's refusal, asserted below
        builder_llava = f"{type(e).__name__}: {e}"
    out, err = optimum.communicate(timeout=300)
    assert optimum.returncode == 0, err[-3000:]
    refusals = json.loads(out.strip().splitlines()[-1])
    t_build = time.time() - t0
    zoo = root / "zoo"
    logs = {}
    for name, (family, route) in VARIANTS.items():
        args = ["import", str(root / name), "--name", name, "--zoo", str(zoo)]
        if route == "genai-xe":
            args = ["import", "genai", str(root / name), "--name", name, "--zoo", str(zoo), "--embeddings",
                    str(ckpt[family])]
        done = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(zoo / "variants" / f"{name}.yaml")
        logs[name] = done.stderr
    print(f"built in {t_build:.0f}s, imported in {time.time() - t0 - t_build:.1f}s")
    return dict(root=root, zoo=zoo, ckpt=ckpt, refusals=refusals, builder_llava=builder_llava, logs=logs)


def manifest(built, name: str) -> dict:
    return yaml.safe_load((built["zoo"] / "variants" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_manifest_is_an_imported_text_variant_that_check_accepts(built, name):
    import hashlib

    family, route = VARIANTS[name]
    doc = manifest(built, name)
    validate(doc)
    config = built["root"] / name / ("config.json" if route == "optimum" else "genai_config.json")
    assert doc["origin"] == {"kind": "imported", "source": name,
                             "config_sha256": hashlib.sha256(config.read_bytes()).hexdigest()}
    assert doc["axes"]["connector"] == {"kind": "none", "depth": None, "latents": None}
    assert doc["axes"]["vision_input"] == "none" and doc["axes"]["backbone"]["family"] == family
    m = doc["model"]
    kv = CHECKPOINTS[family]["kv_heads"]
    assert (m["hidden"], m["layers"], m["heads"], m["kv_heads"], m["head_dim"], m["vocab_size"]) == \
        (64, 2, 4, kv, 16, VOCAB)
    # onnxruntime-genai runs its decoder on one buffer as past and present, and so does lynx-zoo
    update = "concat" if route == "optimum" else "shared_buffer"
    assert m["kv_cache"] == {"past": "past_key_values.{i}.{kv}", "present": "present.{i}.{kv}", "layout": "bnsh",
                             "update": update}
    decoder = {t["name"]: t for t in doc["graphs"]["decoder"]["inputs"]}
    assert decoder["inputs_embeds"]["shape"] == ["batch", "seq", 64] and "input_ids" not in decoder
    assert decoder["past_key_values.1.value"]["shape"] == ["batch", kv, "past", 16]
    # genai's GroupQueryAttention derives positions and reads the mask as right padding, and the
    # importer's head reads each row's own last position; Optimum's decoder takes position_ids and
    # left padding
    if route == "optimum":
        assert "position_ids" in decoder and "position_ids" not in m and doc["prompt"]["padding"] == "left"
    else:
        assert "position_ids" not in decoder and m["position_ids"] == "derived"
        assert doc["prompt"]["padding"] == "right"
    if family == "llama":  # the template writes BOS: the runtime adds none
        assert doc["prompt"]["template"] == "<s>USER: {question}\nASSISTANT:" and doc["prompt"]["add_bos"] is False
        assert (doc["tokenizer"]["bos"], doc["tokenizer"]["eos"]) == ("<s>", "</s>")
    else:
        assert doc["prompt"]["template"] == "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
        assert doc["tokenizer"]["eos"] == "<|im_end|>" and doc["prompt"]["add_bos"] is False
    files = doc["provenance"]["source_files"]
    assert config.name in files and "tokenizer.json" in files
    if route != "genai-xe":  # the split is checked against the decoder it came from
        assert doc["provenance"]["parity"]["split_logits"] <= 1e-4
        assert "split the embedding `" in built["logs"][name] and " x 64) out of the decoder" in built["logs"][name]
        # genai's tied Qwen2 looks rows up in a Transpose of the output head's matrix: the Transpose
        # moves into the embed graph, the matrix stays for the head (Optimum writes two copies)
        assert ("the decoder keeps it" in built["logs"][name]) == (name == "genai-qwen2"), built["logs"][name]
    done = cli("check", name, "--zoo", str(built["zoo"]))
    assert done.returncode == 0, done.stderr
    # the importer's output head reads one position per row (each row's own last over genai's shared
    # buffer, the last fed for Optimum's left padding), whatever product computes it: genai's int4
    # head is a MatMulNBits
    import onnx

    outputs = {t["name"]: t for t in doc["graphs"]["decoder"]["outputs"]}
    assert outputs["logits"]["shape"] == ["batch", 1, VOCAB]
    graph = onnx.load(str(built["zoo"] / doc["graphs"]["decoder"]["path"]), load_external_data=False).graph
    (head,) = [n for n in graph.node if "logits" in n.output]
    assert head.op_type == ("MatMulNBits" if route == "genai-int4" else "MatMul"), head
    (gather,) = [n for n in graph.node if head.input[0] in n.output]
    assert (gather.op_type, gather.output[0]) == ("Gather" if route == "optimum" else "GatherElements",
                                                  "lynx_last/hidden"), gather


def transformers_answer(model, tok, question: str) -> tuple[list[int], list[int], np.ndarray]:
    """The prompt ids, greedy tokens and last prefill logits a transformers user gets:
    `apply_chat_template` (rendered, encoded without special tokens) and `generate`."""
    text = tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=MAX_NEW,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        logits = model(x).logits[0, -1].numpy()
    tokens = out[0, len(ids):].tolist()
    if tok.eos_token_id in tokens:  # the runtime does not emit EOS
        tokens = tokens[:tokens.index(tok.eos_token_id)]
    return ids, tokens, logits


def genai_answer(model, ids: list[int], eos: int) -> list[int]:
    """onnxruntime-genai's own greedy generator on the same prompt ids."""
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=len(ids) + MAX_NEW)
    gen = og.Generator(model, params)
    gen.append_tokens(np.array(ids, dtype=np.int32))
    tokens: list[int] = []
    while not gen.is_done() and len(tokens) < MAX_NEW:
        gen.generate_next_token()
        tokens.append(int(gen.get_next_tokens()[0]))
    return tokens[:tokens.index(eos)] if eos in tokens else tokens


def graph_logits(zoo: Path, doc: dict, ids: list[int]) -> np.ndarray:
    """The imported embed and decoder graphs in onnxruntime, last prefill position."""
    import onnxruntime as ort

    s = {k: ort.InferenceSession(str(zoo / doc["graphs"][k]["path"]), providers=["CPUExecutionProvider"])
         for k in ("embed", "decoder")}
    emb = s["embed"].run(None, {"input_ids": np.array([ids], np.int64)})[0]
    m = doc["model"]
    feed = {"inputs_embeds": emb, "attention_mask": np.ones((1, len(ids)), np.int64)}
    if m.get("position_ids", "input") == "input":
        feed["position_ids"] = np.arange(len(ids), dtype=np.int64)[None]
    for i in range(m["layers"]):
        for kv in ("key", "value"):
            feed[f"past_key_values.{i}.{kv}"] = np.zeros((1, m["kv_heads"], 0, m["head_dim"]), np.float32)
    return s["decoder"].run(["logits"], feed)[0][0, -1]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_lynx_zoo_ask_answers_as_genai_and_transformers(built, name, tmp_path):
    """Greedy tokens of `lynx-zoo ask` on the import = transformers' `generate` on the checkpoint =
    onnxruntime-genai's generator on its folder (the folder built without `exclude_embeds` for the
    `genai-xe` route, which onnxruntime-genai cannot run alone), for every question, and through
    `lynx-zoo eval --batch 3` (left-padded batches for Optimum's decoders, right-padded for genai's)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    family, route = VARIANTS[name]
    ckpt, zoo = built["ckpt"][family], built["zoo"]
    doc = manifest(built, name)
    model = AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(ckpt)
    int4 = route == "genai-int4"
    folder = built["root"] / (name if int4 else f"genai-{family}")
    genai = og.Model(str(folder)) if route != "optimum" else None
    # a genai decoder runs with its shared buffer (the import's manifest) and with separate past and
    # present tensors (a copy of the manifest saying `update: concat`): both must answer alike
    names = [name]
    concat = zoo / "variants" / f"{name}-concat.yaml"
    if doc["model"]["kv_cache"]["update"] == "shared_buffer":
        # (a concatenated cache is answered one question at a time: `right` needs a shared buffer)
        other = {**doc, "name": concat.stem, "model": {**doc["model"],
                                                      "kv_cache": {**doc["model"]["kv_cache"], "update": "concat"}},
                 "prompt": {**doc["prompt"], "padding": "none"}}
        concat.write_text(yaml.safe_dump(other, sort_keys=False))
        names.append(concat.stem)
    worst, differ, items = 0.0, [], []
    try:
        for question in QUESTIONS:
            ids, want, logits = transformers_answer(model, tok, question)
            if int4 and genai is not None:  # the quantized weights answer otherwise: onnxruntime-genai is the reference
                want = genai_answer(genai, ids, tok.eos_token_id)
            for variant in names:
                done = cli("ask", variant, "--zoo", str(zoo), "--question", question, "--greedy", "--max-new-tokens",
                           str(MAX_NEW), "--format", "json", "--threads", "1")
                assert done.returncode == 0, done.stderr
                got = json.loads(done.stdout)["tokens"]
                if got != want:
                    differ.append(f"`{question}`: lynx-zoo `{variant}` {got} vs reference {want}")
            if not int4:
                worst = max(worst, float(np.abs(graph_logits(zoo, doc, ids) - logits).max()))
            if genai is not None and not int4:
                theirs = genai_answer(genai, ids, tok.eos_token_id)
                if theirs != want:
                    differ.append(f"`{question}`: onnxruntime-genai {theirs} vs transformers {want}")
            items.append((question, want))
        # beam search moves rows of the cache: the shared buffers must move as the tensors do
        beams = [json.loads(cli("ask", v, "--zoo", str(zoo), "--question", QUESTIONS[0], "--beams", "3",
                                "--max-new-tokens", str(MAX_NEW), "--format", "json", "--threads", "1").stdout)["tokens"]
                 for v in names]
        assert all(b == beams[0] for b in beams), f"beam search differs between {names}: {beams}"
    finally:
        concat.unlink(missing_ok=True)
    who = "lynx-zoo, onnxruntime-genai" + ("" if int4 else ", transformers") if genai else "lynx-zoo, transformers"
    print(f"{name} ({', '.join(names)}): {len(QUESTIONS) - len(differ)}/{len(QUESTIONS)} greedy answers agree ({who}), "
          f"max |logits diff| to transformers {'-' if int4 else f'{worst:.2e}'}")
    assert not differ, "\n".join(differ)
    assert worst <= 1e-4, f"prefill logits differ by {worst:.2e}"
    assert all(len(want) == MAX_NEW for _, want in items) and len({tuple(w) for _, w in items}) == len(items)

    # the same questions through `eval` in batches of 3: prompts of different lengths
    picture = tmp_path / "blank.png"
    Image.new("RGB", (8, 8), "white").save(picture)
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"dataset": "import-ort", "question": q, "answer": ["-"], "index": i,
                                         "image": str(picture)}) + "\n" for i, (q, _) in enumerate(items)))
    run = cli("eval", name, "--zoo", str(zoo), "--bench", str(bench), "--batch", "3", "--max-new-tokens",
              str(MAX_NEW), "--out", str(tmp_path / "eval"), "--threads", "1")
    assert run.returncode == 0, run.stderr
    lines = (tmp_path / "eval" / name / "predictions.jsonl").read_text().splitlines()
    assert [json.loads(line)["prediction"] for line in lines] == \
        [str(tok.decode(want, skip_special_tokens=True)).strip() for _, want in items]


def test_left_padding_is_what_the_genai_decoder_cannot_take(built):
    """Why a genai import says `prompt.padding: right`: its GroupQueryAttention reads the mask's row
    sums as lengths from the left (right padding), so a left-padded row gets other logits than the
    row alone and a right-padded one the same at its own last position; Optimum's decoder
    (positions from the mask, an additive mask) gets the same left-padded."""
    import onnxruntime as ort

    zoo = built["zoo"]
    seen = {}
    for name in ("genai-llama", "optimum-llama"):
        doc = manifest(built, name)
        m = doc["model"]
        s = ort.InferenceSession(str(zoo / doc["graphs"]["decoder"]["path"]), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        row = rng.normal(size=(1, 7, m["hidden"])).astype(np.float32)

        def logits(embeds, mask):
            feed = {"inputs_embeds": embeds, "attention_mask": mask}
            if "position_ids" in [i.name for i in s.get_inputs()]:
                feed["position_ids"] = np.clip(mask.cumsum(-1) - 1, 0, None)
            for i in range(m["layers"]):
                for kv in ("key", "value"):
                    feed[f"past_key_values.{i}.{kv}"] = np.zeros((len(embeds), m["kv_heads"], 0, m["head_dim"]),
                                                                 np.float32)
            return s.run(["logits"], feed)[0]

        alone = logits(row, np.ones((1, 7), np.int64))[0, -1]
        batch = np.concatenate([np.concatenate([np.zeros((1, 3, m["hidden"]), np.float32), row], 1),
                                rng.normal(size=(1, 10, m["hidden"])).astype(np.float32)])
        mask = np.ones((2, 10), np.int64)
        mask[0, :3] = 0
        # genai's head reads a left-padded row at index row sum - 1 = 6, its 4th real token: held to
        # the row's first 4 tokens alone, what a decoder taking left padding would give there
        want = logits(row[:, :4], np.ones((1, 4), np.int64))[0, -1] if name == "genai-llama" else alone
        seen[name] = float(np.abs(logits(batch, mask)[0, -1] - want).max())
        if name == "genai-llama":  # right-padded: the head reads the row's own last position, 6
            batch[0] = np.concatenate([row[0], np.zeros((3, m["hidden"]), np.float32)])
            mask = np.ones((2, 10), np.int64)
            mask[0, 7:] = 0
            seen["genai-llama right"] = float(np.abs(logits(batch, mask)[0, -1] - alone).max())
        # the import puts the output head on one position per row (each row's own last for genai,
        # the last fed for Optimum's left-padded rows)
        assert logits(batch, mask).shape[1] == 1, name
    print(f"padded row vs alone, max |logits diff|: {seen}")
    assert seen["genai-llama"] > 1e-2 and seen["optimum-llama"] < 1e-4 and seen["genai-llama right"] < 1e-4


def test_what_the_tools_and_the_importer_refuse_is_said(built, tmp_path):
    """Optimum refuses a LLaVA checkpoint and the genai builder builds only text decoders; the
    importer refuses a genai vision pipeline, a decoder without its embedding and no checkpoint,
    an Optimum export without the cache, a folder of neither layout, and a genai_config.json
    without a field it needs."""
    root, zoo = built["root"], built["zoo"]
    said = built["refusals"][str(root / "optimum-llava")] or ""
    assert "Trying to export a llava model, that is a custom or unsupported architecture" in said, said
    said = built["builder_llava"] or ""
    assert said.startswith("NotImplementedError") and "model is not currently supported" in said, said

    def refused(folder: Path, *extra: str) -> str:
        done = cli("import", str(folder), "--name", "x", "--zoo", str(tmp_path / "zoo"), *extra)
        assert done.returncode == 1, done.stderr
        assert not (tmp_path / "zoo" / "variants").exists()  # nothing where `list` looks
        return done.stderr

    genai = tmp_path / "genai-vision"
    genai.mkdir()
    for f in (root / "genai-llama").iterdir():
        if f.is_file():
            (genai / f.name).write_bytes(f.read_bytes())
    config = json.loads((genai / "genai_config.json").read_text())
    config["model"]["vision"] = {"filename": "vision.onnx"}
    (genai / "genai_config.json").write_text(json.dumps(config))
    err = refused(genai)
    assert "genai_config.json`: field `model.vision`" in err and "lynx_export import hf" in err
    del config["model"]["vision"]
    del config["model"]["decoder"]["num_key_value_heads"]
    (genai / "genai_config.json").write_text(json.dumps(config))
    assert "genai_config.json`: field `model.decoder.num_key_value_heads`: missing" in refused(genai)
    err = refused(root / "genai-xe-llama")
    assert "field `inputs_embeds`" in err and "--embeddings CHECKPOINT" in err
    err = refused(root / "optimum-nocache")
    assert "field `past_key_values.0.key`: missing" in err and "--task text-generation-with-past" in err
    err = refused(built["ckpt"]["llama"])
    assert "is neither an onnxruntime-genai folder" in err and "Optimum export" in err
    # a name already in the zoo: refused before anything is written
    done = cli("import", str(root / "genai-llama"), "--name", "genai-llama", "--zoo", str(zoo))
    assert done.returncode == 1 and "variants/genai-llama.yaml or onnx/genai-llama/ exists" in done.stderr
    assert "--force" in done.stderr
