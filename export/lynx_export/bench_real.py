"""Issue 16's real-size benchmark (`bash scripts/bench-real`): lynx-zoo against onnxruntime-genai and
transformers eager, in one run, on the same graphs where they can share them.

    python -m lynx_export bench-real --work DIR [--size real|tiny] [--threads 2] [--repeats 3]

Two groups of engines, each engine a persistent worker process of its own (loaded once; its peak
RSS is its own), driven over JSON lines on stdin/stdout:

- **text**: the language model of the seeded LLaVA (`seeded-llava`, a Qwen2-0.5B-shaped decoder at
  real size) saved as its own Hugging Face folder, built by onnxruntime-genai's model builder (int4;
  fp32 and int4 in other quantisation blocks with `--precisions int4,int4-b128,fp32`) and imported
  with `lynx-zoo import`: lynx-zoo
  (examples/bench_worker.rs, the library) and onnxruntime-genai (`og.Generator`) decode the SAME
  graph; transformers eager runs the float32 checkpoint.
- **llava**: the whole checkpoint with its image, imported by `python -m lynx_export import hf`
  (float32): lynx-zoo against transformers' `LlavaForConditionalGeneration`. onnxruntime-genai's
  builder builds no LLaVA vision (docs/import.md), so it has no row here.

Measured per engine: time to first token (a 64-token prompt; with the image for llava), the time
of one new token (a decoder step and its argmax) at context 128 and 1024 (the prompt ends 8 tokens
before the context, 16 new tokens centre the steps on it; llava's short context is the image +
64-token prompt's), peak RSS (VmHWM), and the memory-bandwidth floor: the decoder's weight bytes
(`onnx_proto::tensor_bytes` of the graph; for transformers the language model's parameters but the
embedding lookup) over the bandwidth `bench_worker --bandwidth` measures in the same run
(src/bench/floor.rs). Every prompt is made by lynx-zoo's tokenizer to the exact length and the same ids go to
every engine; greedy, exactly N new tokens (EOS banned until then). Runs are interleaved: an
untimed warm-up round, then R rounds, each over every case with the engines in a rotated order;
medians with the min-max spread. The bandwidth is measured before, between and after the groups (no
engine loaded then) and before every timed round and after the last (the engines loaded, idle): on
a shared machine it moves by tens of percent within minutes. Two floors: the strict one divides by
the best bandwidth measured anywhere in the run; a round's own divides by the better of the two
measurements around that round, and each step is held to its round's. Writes
DIR/results/bench-real.{json,md} (raw samples, machine, command).

Nothing is downloaded; the models (several GB at real size) are built under DIR and never
committed. Each build step is skipped when its output is there (delete DIR to rebuild).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .data import repo_root

TEXT_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}"
                 "{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                 "{% endif %}")
GiB = 1024 ** 3


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message names the file, field or engine."""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] bench-real: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- settings

@dataclass
class Settings:
    work: Path
    size: str = "real"  # real | tiny
    threads: int = 2
    repeats: int = 3
    warmup: int = 1
    new_tokens: int = 16
    ttft_tokens: int = 64
    contexts: tuple[int, ...] = (128, 1024)
    precisions: tuple[str, ...] = ("int4",)
    groups: tuple[str, ...] = ("text", "llava")
    build_only: bool = False
    parallel_load: bool = False  # start a group's engines at once (faster; their load times overlap)
    lynx_spin: str = "auto"  # lynx-zoo's intra-op threads: auto (by decoder size), on, off (RuntimeOptions::with_spinning)
    image: Path = field(default_factory=lambda: repo_root() / "data" / "test" / "images" / "000000.png")
    lynx_worker: Path = field(default_factory=lambda: Path(os.environ.get("LYNX_BENCH_WORKER") or repo_root() / "target" / "release" / "examples" / "bench_worker"))
    lynx_zoo: Path = field(default_factory=lambda: Path(os.environ.get("LYNX_ZOO_BIN") or repo_root() / "target" / "release" / "lynx-zoo"))
    command: str = ""

    def check(self) -> None:
        for name, v in (("--threads", self.threads), ("--repeats", self.repeats), ("--new-tokens", self.new_tokens),
                        ("--ttft-tokens", self.ttft_tokens)):
            if v < 1:
                raise BenchError(f"`{name}`: {v} is not at least 1")
        if self.new_tokens < 2:
            raise BenchError(f"`--new-tokens`: {self.new_tokens}: at least 2 (a decode step needs a token after the first)")
        if self.warmup < 0:
            raise BenchError(f"`--warmup`: {self.warmup} is negative")
        bad = [c for c in self.contexts if c <= self.new_tokens // 2 + 1]
        if bad or not self.contexts:
            raise BenchError(f"`--contexts`: {list(self.contexts)}: give contexts longer than half of --new-tokens")
        for p in self.precisions:
            builder_precision(p)
        for g in self.groups:
            if g not in ("text", "llava"):
                raise BenchError(f"`--groups`: `{g}` is neither text nor llava")
        if "llava" in self.groups and not self.image.is_file():
            raise BenchError(f"`--image`: `{self.image}` is not a file")
        for what, exe in (("the lynx-zoo worker", self.lynx_worker), ("the lynx-zoo binary", self.lynx_zoo)):
            if not exe.is_file():
                raise BenchError(f"{what} `{exe}` is missing: build it with `cargo build --release --examples`")


# ----------------------------------------------------------------------------- building the models

def seeded_spec(size: str):
    from .importers.seeded_llava import REAL_SIZE_SPEC, Sizes, Spec

    if size == "real":
        return REAL_SIZE_SPEC
    # two layers of 64 (int4 blocks of 32 divide it), the zoo's BPE, a 32 px image of 16 patches
    return Spec("llava-qwen2-tiny-random", "clip", "qwen2", -2, "default", kv_heads=2,
                sizes=Sizes(hidden=64, ffn=128, heads=4, max_positions=256))


def save_language_model(llava_dir: Path, out: Path) -> Path:
    """The LLaVA's language model and LM head as a Qwen2ForCausalLM folder (with its tokenizer and
    a text chat template), which onnxruntime-genai's builder and transformers read."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlavaForConditionalGeneration

    llava = LlavaForConditionalGeneration.from_pretrained(llava_dir, dtype=torch.float32)
    text_config: Any = llava.config.text_config
    tied = llava.lm_head.weight.data_ptr() == llava.model.language_model.embed_tokens.weight.data_ptr()
    text_config.tie_word_embeddings = tied
    lm = AutoModelForCausalLM.from_config(text_config, dtype=torch.float32)
    lm.model.load_state_dict(llava.model.language_model.state_dict())
    lm.lm_head.load_state_dict(llava.lm_head.state_dict())
    lm.generation_config.eos_token_id = llava.generation_config.eos_token_id
    lm.generation_config.pad_token_id = llava.generation_config.pad_token_id
    lm.eval().save_pretrained(out)
    tok = AutoTokenizer.from_pretrained(llava_dir)
    tok.chat_template = TEXT_TEMPLATE
    tok.save_pretrained(out)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    del llava, lm
    return out


# int4 quantisation blocks the builder's `block_size` takes (`int4-bN`; plain `int4` is its default, 32)
INT4_BLOCKS = (16, 32, 64, 128, 256)


def builder_precision(name: str) -> tuple[str, dict[str, str]]:
    """A `--precisions` entry as the builder's precision and extra options: `fp32`, `int4` (the
    builder's default blocks of 32 weights per scale) or `int4-bN` (blocks of N, e.g. 128: GPTQ's and
    AWQ's usual group size; fewer scales to read and apply per weight)."""
    if name in ("int4", "fp32"):
        return name, {}
    if name.startswith("int4-b") and name[len("int4-b"):] in {str(b) for b in INT4_BLOCKS}:
        return "int4", {"block_size": name[len("int4-b"):]}
    raise BenchError(f"`--precisions`: `{name}` is none of int4, fp32, "
                     + ", ".join(f"int4-b{b}" for b in INT4_BLOCKS) + " (int4 in quantisation blocks of N)")


def genai_build(checkpoint: Path, out: Path, precision: str, exclude_embeds: bool = False) -> None:
    """`python -m onnxruntime_genai.models.builder -i CHECKPOINT -o OUT -p PRECISION -e cpu
    [--extra_options exclude_embeds=true block_size=N]`, in this process (its `__main__` block, without
    importing torch and transformers once more; export/tests/test_import_ort.py builds its folders with
    it too). PRECISION is a `--precisions` entry (`builder_precision`)."""
    import contextlib
    import logging
    from unittest import mock

    from onnxruntime_genai.models import builder

    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)  # a line per MatMul otherwise

    builder_prec, options = builder_precision(precision)
    argv = ["builder", "-i", str(checkpoint), "-o", str(out), "-p", builder_prec, "-e", "cpu",
            "-c", str(out.parent / f"genai-cache-{precision}")]
    if exclude_embeds:
        options["exclude_embeds"] = "true"
    if options:
        argv += ["--extra_options", *(f"{k}={v}" for k, v in options.items())]
    with mock.patch.object(sys, "argv", argv):
        args = builder.get_args()
    extra = builder.parse_extra_options(
        args.model_name, args.input, args.output, args.precision, args.execution_provider, args.cache_dir,
        args.extra_options, builder_config_version=args.builder_config_version, target_options=args.target_options,
        drafter_options=args.drafter_options, speculative_options=args.speculative_options,
        runtime_config=args.runtime_config, search=args.search)
    with contextlib.redirect_stdout(sys.stderr):  # stdout is the report's
        builder.create_model(args.model_name, args.input, args.output, args.precision, args.execution_provider,
                             args.cache_dir, **extra)


def build(s: Settings) -> dict[str, Any]:
    """Every model the run needs, under s.work (each step skipped when its output is there)."""
    import torch

    from .importers.hf import ImportOptions, import_hf
    from .importers.seeded_llava import build_checkpoint

    torch.set_num_threads(s.threads)
    spec = seeded_spec(s.size)
    ckpt_root, zoo = s.work / "checkpoints", s.work / "zoo"
    llava_dir = ckpt_root / spec.name
    timings: dict[str, float] = {}

    def step(name: str, done: Path, fn: Callable[[], Any]) -> None:
        if done.exists():
            return
        t = time.time()
        log(f"building {name} ...")
        fn()
        timings[name] = round(time.time() - t, 1)
        log(f"built {name} in {timings[name]} s")

    step("seeded-llava", llava_dir / "config.json", lambda: build_checkpoint(spec, ckpt_root))
    lm_dir = ckpt_root / f"{spec.name}-lm"
    if "text" in s.groups:
        step("language model folder", lm_dir / "config.json", lambda: save_language_model(llava_dir, lm_dir))
        for p in s.precisions:
            genai = s.work / f"genai-{p}"

            def make(p: str = p, genai: Path = genai) -> None:
                genai_build(lm_dir, genai, p)
            step(f"onnxruntime-genai {p}", genai / "genai_config.json", make)

            def imp(p: str = p, genai: Path = genai) -> None:
                done = subprocess.run([str(s.lynx_zoo), "import", str(genai), "--name", f"lm-{p}", "--zoo", str(zoo)],
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    raise BenchError(f"`lynx-zoo import {genai}` failed: {done.stderr.strip()[-2000:]}")
            step(f"lynx-zoo import lm-{p}", zoo / "variants" / f"lm-{p}.yaml", imp)
    if "llava" in s.groups:
        step("import hf llava", zoo / "variants" / "llava.yaml",
             lambda: import_hf(llava_dir, ImportOptions(name="llava", zoo=zoo, max_new_tokens=s.new_tokens),
                               lambda m: log(m)))
    return dict(llava=llava_dir, lm=lm_dir, zoo=zoo, build_s=timings)


# ----------------------------------------------------------------------------- workers

class Worker:
    """One engine in its own process: loaded once, one JSON line per request and answer."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None, wait: bool = True):
        self.name = name
        self.argv = argv
        self.started = time.time()
        self.ready: dict[str, Any] = {}
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True,
                                     env=dict(os.environ, **(env or {})), bufsize=1)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Waits for the worker's `{"ready": ...}` line (its load done)."""
        if self.ready:
            return
        ready = self._read()
        if "error" in ready or not ready.get("ready"):
            self.close()
            raise BenchError(f"engine `{self.name}` did not load: {ready.get('error', ready)}")
        self.ready = dict(ready, spawn_to_ready_s=round(time.time() - self.started, 2))

    def _read(self) -> dict:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                code = self.proc.wait()
                raise BenchError(f"engine `{self.name}` ({shlex.join(self.argv)}) exited with {code} without answering")
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError as e:
                    raise BenchError(f"engine `{self.name}` answered a line that is not JSON ({e}): {line[:200]}")

    def ask(self, request: dict) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise BenchError(f"engine `{self.name}`: {reply['error']}")
        return reply

    def memory(self) -> dict[str, int]:
        """VmHWM (peak RSS) and VmRSS in bytes, from /proc/PID/status."""
        out: dict[str, int] = {}
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    out[key] = int(value.split()[0]) * 1024
        except OSError:
            pass
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def lynx_argv(s: Settings, zoo: Path, variant: str) -> list[str]:
    return [str(s.lynx_worker), "--zoo", str(zoo), "--variant", variant, "--threads", str(s.threads),
            "--spin", s.lynx_spin]


def python_worker(engine: str, model: Path, threads: int, kind: str = "causal") -> list[str]:
    return [sys.executable, "-m", "lynx_export.bench_real", "worker", "--engine", engine, "--model", str(model),
            "--threads", str(threads), "--kind", kind]


def thread_env(threads: int) -> dict[str, str]:
    return {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join([str(repo_root() / "export"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def serve(argv: list[str]) -> int:
    """`python -m lynx_export.bench_real worker --engine genai|transformers --model DIR --threads T
    [--kind causal|llava]`: the Python engines' side of the protocol (examples/bench_worker.rs's
    `run`, taking prompt ids in place of a question)."""
    p = argparse.ArgumentParser(prog="bench_real worker")
    p.add_argument("--engine", choices=["genai", "transformers"], required=True)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--kind", choices=["causal", "llava"], default="causal")
    a = p.parse_args(argv)

    def say(obj: dict) -> None:
        print(json.dumps(obj), flush=True)

    try:
        t = time.time()
        engine: GenaiEngine | TorchEngine = GenaiEngine(a.model, a.threads) if a.engine == "genai" \
            else TorchEngine(a.model, a.threads, a.kind)
        say(dict(ready=True, load_s=time.time() - t, threads=a.threads, **engine.info))
    except Exception as e:  # the orchestrator names the engine; the message names the file
        say({"error": f"{type(e).__name__}: {e}"})
        return 1
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            if req.get("op") == "quit":
                break
            if req.get("op") != "run":
                raise BenchError(f"field `op`: {req.get('op')!r} is none of run, quit")
            ids, n = req.get("ids"), req.get("new_tokens")
            if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
                raise BenchError("field `ids`: missing or not a list of token ids")
            if not isinstance(n, int) or n < 1:
                raise BenchError("field `new_tokens`: missing or not a whole number >= 1")
            say(engine.run(ids, n, req.get("image")))
        except Exception as e:
            say({"error": f"{type(e).__name__}: {e}"})
    return 0


class GenaiEngine:
    """onnxruntime-genai's generator on a builder folder, greedy, exactly n new tokens."""

    def __init__(self, folder: Path, threads: int):
        import onnxruntime_genai as og

        if not (folder / "genai_config.json").is_file():
            raise BenchError(f"`{folder}/genai_config.json`: missing (not an onnxruntime-genai folder)")
        self.og = og
        config = og.Config(str(folder))
        config.clear_providers()  # the CPU execution provider
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {
            "intra_op_num_threads": threads, "inter_op_num_threads": 1}}}}))
        self.model = og.Model(config)
        self.info = {"version": og.__version__, "provider": "CPU"}

    def run(self, ids: list[int], n: int, image: str | None) -> dict:
        import numpy as np

        if image:
            raise BenchError("field `image`: onnxruntime-genai runs the text decoder only here")
        og = self.og
        params = og.GeneratorParams(self.model)
        params.set_search_options(do_sample=False, max_length=len(ids) + n, min_length=len(ids) + n)
        t0 = time.perf_counter()
        gen = og.Generator(self.model, params)
        gen.append_tokens(np.array(ids, dtype=np.int32))
        gen.generate_next_token()
        tokens = [int(gen.get_next_tokens()[0])]
        ttft = time.perf_counter() - t0
        steps = []
        for _ in range(n - 1):
            t = time.perf_counter()
            gen.generate_next_token()
            tokens.append(int(gen.get_next_tokens()[0]))
            steps.append(time.perf_counter() - t)
        return run_reply(ttft, steps, tokens, ids)


class TorchEngine:
    """transformers eager (PyTorch, no compile) on the checkpoint: the prefill, then one forward per
    new token with the cache, argmax with EOS banned (what `generate(do_sample=False,
    min_new_tokens=n)` computes, without its per-step bookkeeping)."""

    def __init__(self, folder: Path, threads: int, kind: str):
        import warnings

        import torch
        import transformers

        warnings.filterwarnings("ignore", category=FutureWarning)  # `past_key_values` renamed in 5.x
        if not (folder / "config.json").is_file():
            raise BenchError(f"`{folder}/config.json`: missing (not a Hugging Face checkpoint folder)")
        torch.set_num_threads(threads)
        self.torch = torch
        self.kind = kind
        if kind == "llava":
            from transformers import AutoImageProcessor, LlavaForConditionalGeneration

            self.model = LlavaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
            self.images = AutoImageProcessor.from_pretrained(folder)
            self.image_token = int(self.model.config.image_token_id)
            self.image_tokens = int(self.model.config.image_seq_length)
            lm, head = self.model.model.language_model, self.model.lm_head
        else:
            from transformers import AutoModelForCausalLM

            self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
            lm, head = self.model.model, self.model.lm_head
        eos = self.model.generation_config.eos_token_id
        self.eos = [eos] if isinstance(eos, int) else list(eos or [])
        # what a decode step reads: the decoder layers, the final norm and the LM head; the
        # embedding lookup reads one row (unless the head shares its matrix)
        embed = lm.embed_tokens.weight
        seen = {id(p): p for p in list(lm.parameters()) + list(head.parameters())}
        weight = sum(p.numel() * p.element_size() for p in seen.values()
                     if p is not embed or head.weight is embed)
        self.info = {"version": transformers.__version__, "torch": torch.__version__, "provider": "CPU",
                     "attention": self.model.config._attn_implementation, "decoder_weight_bytes": int(weight)}

    def run(self, ids: list[int], n: int, image: str | None) -> dict:
        torch = self.torch
        t0 = time.perf_counter()
        with torch.inference_mode():
            kw: dict[str, Any] = {}
            if self.kind == "llava":
                if not image:
                    raise BenchError("field `image`: a LLaVA run needs the image")
                from PIL import Image

                with Image.open(image) as im:
                    kw["pixel_values"] = self.images(im.convert("RGB"), return_tensors="pt")["pixel_values"]
                at = [k for k, i in enumerate(ids) if i == self.image_token]
                if len(at) != 1:
                    raise BenchError(f"field `ids`: holds the image token {self.image_token} {len(at)} times, not once")
                ids = ids[:at[0]] + [self.image_token] * self.image_tokens + ids[at[0] + 1:]
            elif image:
                raise BenchError("field `image`: a text model takes no image")
            x = torch.tensor([ids])
            out = self.model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=True, logits_to_keep=1, **kw)
            tokens = [self.pick(out.logits[0, -1])]
            ttft = time.perf_counter() - t0
            past, length, steps = out.past_key_values, len(ids), []
            for _ in range(n - 1):
                t = time.perf_counter()
                length += 1
                out = self.model(input_ids=torch.tensor([[tokens[-1]]]), past_key_values=past,
                                 attention_mask=torch.ones((1, length), dtype=torch.long), use_cache=True)
                past = out.past_key_values
                tokens.append(self.pick(out.logits[0, -1]))
                steps.append(time.perf_counter() - t)
        return run_reply(ttft, steps, tokens, ids)

    def pick(self, logits) -> int:
        logits = logits.clone()
        for e in self.eos:
            logits[e] = float("-inf")
        return int(logits.argmax())


def run_reply(ttft: float, steps: list[float], tokens: list[int], ids: list[int]) -> dict:
    return {"ttft_ms": ttft * 1e3, "step_ms": statistics.fmean(steps) * 1e3 if steps else None,
            "steps_ms": [x * 1e3 for x in steps], "steps": len(steps), "tokens": tokens, "positions": len(ids)}


# ----------------------------------------------------------------------------- the run

@dataclass
class Case:
    name: str  # ttft | ctx128 | ...
    text_tokens: int  # the prompt's text tokens (the image's placeholder not counted)
    image: bool
    context: int  # positions at the middle decode step


@dataclass
class Engine:
    name: str  # lynx-zoo | onnxruntime-genai | transformers
    graph: str  # what it runs
    worker: Worker
    takes: str  # question | ids
    precision: str  # a `--precisions` entry (int4, int4-b128, fp32); fp32 for the checkpoints and the import


def cases_for(s: Settings, group: str, image_tokens: int) -> list[Case]:
    half = s.new_tokens // 2
    if group == "text":
        out = [Case("ttft", s.ttft_tokens, False, s.ttft_tokens + half)]
        out += [Case(f"ctx{c}", c - half, False, c) for c in s.contexts]
        return out
    out = [Case("ttft", s.ttft_tokens, True, image_tokens + s.ttft_tokens + half)]
    for c in s.contexts:
        if c - half - image_tokens >= 4:  # the image alone fills a short context
            out.append(Case(f"ctx{c}", c - half - image_tokens, True, c))
    return out


def median_spread(values: list[float | None]) -> dict[str, float] | None:
    xs = [x for x in values if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def check_positions(s: Settings, zoo: Path, llava: Path) -> None:
    """Every case's prompt and new tokens fit each lynx-zoo variant's `model.max_positions`, before
    any engine loads."""
    import yaml

    for group in s.groups:
        image_tokens = 0
        if group == "llava":
            image_tokens = int(json.loads((llava / "config.json").read_text()).get("image_seq_length") or 0)
        names = [f"lm-{p}" for p in s.precisions] if group == "text" else ["llava"]
        for name in names:
            path = zoo / "variants" / f"{name}.yaml"
            try:
                most = int(yaml.safe_load(path.read_text())["model"]["max_positions"])
            except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as e:
                raise BenchError(f"`{path}`: field `model.max_positions`: cannot read it ({e})")
            for c in cases_for(s, group, image_tokens):
                last = c.text_tokens + image_tokens + s.new_tokens
                if last > most:
                    flag = "--ttft-tokens" if c.name == "ttft" else "--contexts"
                    raise BenchError(f"`{flag}`: case {c.name} needs {last} positions; `{name}` holds {most} "
                                     f"(`model.max_positions` in {path})")


def run_group(s: Settings, group: str, built: dict, env: dict[str, str]) -> dict:
    """Loads the group's engines, one worker each, runs the warm-up and timed rounds and returns
    what `summarize` needs (the floor waits for the bandwidth measured after the group)."""
    zoo = built["zoo"]
    engines: list[Engine] = []
    wait = not s.parallel_load
    try:
        if group == "text":
            llava_cfg = None
            for p in s.precisions:
                lynx = Worker(f"lynx-zoo/lm-{p}", lynx_argv(s, zoo, f"lm-{p}"), env, wait)
                engines.append(Engine("lynx-zoo", f"genai {p} graph", lynx, "question", p))
                genai = Worker(f"onnxruntime-genai/{p}", python_worker("genai", s.work / f"genai-{p}", s.threads), env, wait)
                engines.append(Engine("onnxruntime-genai", f"genai {p} graph", genai, "ids", p))
            engines.append(Engine("transformers", "fp32 checkpoint",
                                  Worker("transformers/lm", python_worker("transformers", built["lm"], s.threads), env, wait),
                                  "ids", "fp32"))
            image_tokens = 0
        else:
            llava_cfg = json.loads((built["llava"] / "config.json").read_text())
            image_tokens = int(llava_cfg.get("image_seq_length") or 0)
            if image_tokens <= 0:
                raise BenchError(f"`{built['llava']}/config.json`: field `image_seq_length`: missing")
            lynx = Worker("lynx-zoo/llava", lynx_argv(s, zoo, "llava"), env, wait)
            engines.append(Engine("lynx-zoo", "import hf fp32 graphs", lynx, "question", "fp32"))
            engines.append(Engine("transformers", "fp32 checkpoint",
                                  Worker("transformers/llava", python_worker("transformers", built["llava"], s.threads,
                                                                             "llava"), env, wait), "ids", "fp32"))
        for e in engines:
            e.worker.wait_ready()
        cases = cases_for(s, group, image_tokens)
        # the prompts, by lynx-zoo's tokenizer: every engine gets the same ids
        prompts: dict[str, dict] = {}
        first = engines[0].worker
        for c in cases:
            flag = "--ttft-tokens" if c.name == "ttft" else "--contexts"
            try:
                prompts[c.name] = first.ask({"op": "prompt", "tokens": c.text_tokens})
            except BenchError as err:
                raise BenchError(f"`{flag}`: case {c.name} ({c.text_tokens} text tokens): {err}") from None
        samples: list[dict] = []

        def one(e: Engine, c: Case, rnd: int) -> dict:
            pr = prompts[c.name]
            image = str(s.image) if c.image else None
            req: dict[str, Any] = {"op": "run", "new_tokens": s.new_tokens, "image": image}
            if e.takes == "question":
                req["question"] = pr["question"]
            else:
                req["ids"] = pr["ids"]
            r = e.worker.ask(req)
            if e.takes == "question" and r.get("prompt_ids") != pr["ids"]:
                raise BenchError(f"engine `{e.worker.name}` encoded case {c.name} otherwise than the prompt's ids")
            return dict(engine=e.name, graph=e.graph, worker=e.worker.name, case=c.name, round=rnd,
                        ttft_ms=r["ttft_ms"], step_ms=r.get("step_ms"), tokens=r["tokens"],
                        raw={k: v for k, v in r.items() if k not in ("tokens", "prompt_ids")})

        # untimed warm-up rounds over every case (ONNX Runtime's arenas and PyTorch's allocator
        # grow to the longest context once), then the timed rounds, engines in a rotated order; the
        # bandwidth before every timed round and after the last (the engines loaded and idle): a
        # round's floor is the best of the two around it, as the machine's bandwidth moves
        round_bandwidth: list[dict] = []
        for rnd in range(-s.warmup, s.repeats):
            if rnd >= 0:
                round_bandwidth.append(measure_bandwidth(s, env))
            k = rnd % len(engines)
            order = engines[k:] + engines[:k]
            for c in cases:
                for e in order:
                    samples.append(one(e, c, rnd))
            log(f"{group}: {'warm-up' if rnd < 0 else 'round'} {rnd + 1 if rnd >= 0 else rnd + s.warmup + 1}/"
                f"{s.repeats if rnd >= 0 else s.warmup} done")
        round_bandwidth.append(measure_bandwidth(s, env))
        memory = {e.worker.name: e.worker.memory() for e in engines}
        return dict(group=group, engines=engines, cases=cases, prompts=prompts, samples=samples, memory=memory,
                    image_tokens=image_tokens, round_bandwidth=round_bandwidth)
    finally:
        for e in engines:
            e.worker.close()


def paired_floor(rows: list[dict], samples: list[dict]) -> list[dict]:
    """Each quantised graph's steps against the float32 graph's steps of the same engine, round and
    case: a float32 decode step reads its weight bytes from memory and nothing else of size, so its
    bytes over its time is the bandwidth a decode step got at that moment; the quantised step's floor
    is its own bytes at that bandwidth. Median (min-max) of step / that floor over the rounds, per
    engine, graph and case (none without a float32 row of that engine)."""
    weight = {r["worker"]: r["decoder_weight_bytes"] for r in rows}
    fp32 = {r["engine"]: r["worker"] for r in rows if r["precision"] == "fp32" and r["engine"] != "transformers"}
    step = {(x["worker"], x["case"], x["round"]): x["step_ms"] for x in samples if x["round"] >= 0 and x["step_ms"]}
    rounds = sorted({rnd for _, _, rnd in step})
    out = []
    for r in rows:
        me, ref = r["worker"], fp32.get(r["engine"])
        if ref is None or ref == me or not weight.get(me) or not weight.get(ref):
            continue
        for case in r["cases"]:
            ratios = [step[(me, case, rnd)] / (weight[me] * step[(ref, case, rnd)] / weight[ref])
                      for rnd in rounds if (me, case, rnd) in step and (ref, case, rnd) in step]
            if ratios:
                out.append({"engine": r["engine"], "graph": r["graph"], "worker": r["worker"], "reference": ref,
                            "case": case, "step_over_floor": median_spread(ratios)})
    return out


def summarize(group: str, engines: list[Engine], cases: list[Case], prompts: dict, samples: list[dict],
              memory: dict, bandwidth: dict, image_tokens: int, round_bandwidth: list[dict]) -> dict:
    """`bandwidth`: the best measured in the whole run (the strict floor); `round_bandwidth`: the
    measurements before each timed round and after the last (a round's floor: the better of the two
    around it)."""
    gbps = best_gbps(bandwidth)
    window = [max(best_gbps(a), best_gbps(b)) for a, b in zip(round_bandwidth, round_bandwidth[1:])]
    timed = [x for x in samples if x["round"] >= 0]
    rows = []
    # onnxruntime-genai reads the graph lynx-zoo reports the tensor bytes of (its embedding table
    # aside, of which a step reads one row)
    graph_bytes = {e.graph: e.worker.ready["decoder_weight_bytes"] for e in engines
                   if e.worker.ready.get("decoder_weight_bytes")}
    for e in engines:
        mine = [x for x in timed if x["worker"] == e.worker.name]
        weight = e.worker.ready.get("decoder_weight_bytes") or graph_bytes.get(e.graph)
        floor_ms = weight / (gbps * 1e9) * 1e3 if weight else None
        row: dict[str, Any] = {"engine": e.name, "graph": e.graph, "precision": e.precision, "worker": e.worker.name,
                               "load_s": e.worker.ready.get("load_s"), "spinning": e.worker.ready.get("spinning"),
                               "peak_rss_bytes": memory[e.worker.name].get("VmHWM"),
                               "decoder_weight_bytes": weight, "step_floor_ms": floor_ms, "cases": {}}
        for c in cases:
            xs = [x for x in mine if x["case"] == c.name]
            step = median_spread([x["step_ms"] for x in xs])
            # each step against the floor of its round's bandwidth
            in_round = median_spread([x["step_ms"] / (weight / (window[x["round"]] * 1e9) * 1e3)
                                      for x in xs if x["step_ms"] and weight])
            row["cases"][c.name] = {
                "context": c.context, "text_tokens": c.text_tokens, "image": c.image,
                "ttft_ms": median_spread([x["ttft_ms"] for x in xs]), "step_ms": step,
                "tokens_per_s": median_spread([1e3 / x["step_ms"] for x in xs if x["step_ms"]]),
                "step_over_floor": step["median"] / floor_ms if step and floor_ms else None,
                "step_over_round_floor": in_round}
        rows.append(row)
    # greedy tokens: engines that share a graph must agree; the others are reported
    agree: dict[str, Any] = {}
    for c in cases:
        by = {e.worker.name: [x["tokens"] for x in timed if x["worker"] == e.worker.name and x["case"] == c.name]
              for e in engines}
        agree[c.name] = {w: toks[0] if toks else None for w, toks in by.items()}
        for w, toks in by.items():
            if any(t != toks[0] for t in toks):
                raise BenchError(f"engine `{w}` gave other greedy tokens from one round to the next in case {c.name}")
    shared = []
    graphs = sorted({e.graph for e in engines})
    for g in graphs:
        ws = [e.worker.name for e in engines if e.graph == g]
        if len(ws) > 1:
            for c in cases:
                ref = agree[c.name][ws[0]]
                same = all(agree[c.name][w] == ref for w in ws)
                shared.append({"graph": g, "case": c.name, "engines": ws, "same_tokens": same})
    bad = [x for x in shared if not x["same_tokens"]]
    if bad:
        raise BenchError(f"engines sharing a graph gave other greedy tokens: {bad} ({agree})")
    return {"group": group, "image_tokens": image_tokens, "cases": [c.__dict__ for c in cases],
            "round_bandwidth": round_bandwidth, "round_floor_gbps": window,
            "prompts": {k: {"question_words": len(v["question"].split()), "ids": v["ids"]} for k, v in prompts.items()},
            "rows": rows, "paired_floor": paired_floor(rows, samples), "tokens": agree,
            "shared_graph_agreement": shared, "samples": samples}


def machine(s: Settings) -> dict:
    info: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cores": os.cpu_count(),
                            "platform": platform.platform(), "python": platform.python_version(),
                            "execution_provider": "CPU", "threads": s.threads}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB, 1)
    except (OSError, ValueError):
        pass
    for mod in ("onnxruntime", "onnxruntime_genai", "torch", "transformers"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    info["ort_dylib"] = os.environ.get("ORT_DYLIB_PATH")
    try:
        info["loadavg"] = os.getloadavg()
    except OSError:
        pass
    return info


def best_gbps(b: dict) -> float:
    """What the floor divides by: the higher of a measurement's two kernels (`Bandwidth::best_gbps`)."""
    return max(b["read_gbps"], b["triad_gbps"])


def measure_bandwidth(s: Settings, env: dict[str, str]) -> dict:
    done = subprocess.run([str(s.lynx_worker), "--bandwidth", "--threads", str(s.threads)], capture_output=True,
                          text=True, env=dict(os.environ, **env))
    try:
        out = json.loads(done.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise BenchError(f"`{s.lynx_worker} --bandwidth` failed ({done.returncode}): {done.stderr[-1000:]}")
    if "error" in out:
        raise BenchError(f"`{s.lynx_worker} --bandwidth`: {out['error']}")
    return out


def run(s: Settings) -> dict:
    s.check()
    s.work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    built = build(s)
    if s.build_only:
        log(f"built under {s.work}: {built['build_s'] or 'nothing new'}")
        return {"build_s": built["build_s"]}
    check_positions(s, built["zoo"], built["llava"])
    env = thread_env(s.threads)
    if os.environ.get("ORT_DYLIB_PATH"):
        env["ORT_DYLIB_PATH"] = os.environ["ORT_DYLIB_PATH"]
    # the bandwidth before, between and after the groups (no engine loaded): the floor divides by
    # the best of them, as a disturbed measurement would set a floor below the machine's
    load_start = os.getloadavg()
    bandwidths = [measure_bandwidth(s, env)]
    log(f"bandwidth: read {bandwidths[0]['read_gbps']:.1f} GB/s, triad {bandwidths[0]['triad_gbps']:.1f} GB/s")
    measured = []
    for g in s.groups:
        measured.append(run_group(s, g, built, env))
        bandwidths.append(measure_bandwidth(s, env))
        log(f"bandwidth: read {bandwidths[-1]['read_gbps']:.1f} GB/s, triad {bandwidths[-1]['triad_gbps']:.1f} GB/s")
    best = max(bandwidths + [b for m in measured for b in m["round_bandwidth"]], key=best_gbps)
    groups = [summarize(**m, bandwidth=best) for m in measured]
    result = {"command": s.command, "machine": machine(s), "settings": {
        "size": s.size, "threads": s.threads, "repeats": s.repeats, "warmup": s.warmup, "new_tokens": s.new_tokens,
        "ttft_tokens": s.ttft_tokens, "contexts": list(s.contexts), "precisions": list(s.precisions),
        "image": str(s.image), "lynx_spin": s.lynx_spin}, "build_s": built["build_s"], "loadavg_start": load_start,
        "bandwidth": {"runs": bandwidths, "best": best},
        "groups": groups, "wall_s": round(time.time() - t0, 1)}
    out = s.work / "results"
    out.mkdir(exist_ok=True)
    (out / "bench-real.json").write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result)
    (out / "bench-real.md").write_text(md)
    print(md)
    log(f"wrote {out / 'bench-real.json'} and {out / 'bench-real.md'} in {result['wall_s']} s")
    return result


# ----------------------------------------------------------------------------- the report

def fmt(m: dict | None, digits: int | None = None, scale: float = 1.0) -> str:
    if not m:
        return "-"
    if digits is None:
        digits = 0 if m["median"] >= 100 else 1
    f = f"{{:.{digits}f}}"
    return f"{f.format(m['median'] * scale)} ({f.format(m['min'] * scale)}-{f.format(m['max'] * scale)})"


def markdown(r: dict) -> str:
    m, st = r["machine"], r["settings"]
    bws, best = r["bandwidth"]["runs"], r["bandwidth"]["best"]
    lines = [f"## bench-real, {m['date']}", "",
             f"Machine: {m['cores']} cores ({m.get('cpu', '?')}), {m.get('memory_gib', '?')} GiB; ONNX Runtime "
             f"{m['onnxruntime']}, {m['execution_provider']} execution provider; onnxruntime-genai "
             f"{m['onnxruntime_genai']}; torch {m['torch']}, transformers {m['transformers']}; {st['threads']} threads "
             f"per engine. Model size `{st['size']}`; {st['repeats']} interleaved rounds after {st['warmup']} untimed; "
             f"greedy, {st['new_tokens']} new tokens per run. Medians (min-max).", "",
             "Bandwidth (read-only / triad GB/s, before, between and after the groups, no engine loaded): "
             + ", ".join(f"{b['read_gbps']:.1f} / {b['triad_gbps']:.1f}" for b in bws)
             + f"; the best of every measurement in the run, {best_gbps(best):.1f} GB/s, sets `floor ms` and the "
             "strict `step / floor`; each round's own floor takes the better of the measurements just before and "
             "after it (the engines loaded, idle).", ""]
    for g in r["groups"]:
        cases = g["cases"]
        ctx = [c for c in cases if c["name"] != "ttft"]
        short = cases[0] if g["group"] == "llava" else None
        head = ["engine", "graph", f"TTFT ms ({cases[0]['text_tokens']} tok{' + image' if cases[0]['image'] else ''})"]
        cols = sorted(([short] if short else []) + ctx, key=lambda c: c["context"])
        head += [f"tok/s @ {c['context']}" for c in cols]
        if len(cols) >= 2:
            head.append(f"step {cols[-1]['context']} / {cols[0]['context']}")
        at = f" @ {cols[0]['context']}" if cols else ""
        head += [f"step / floor{at}, its round", f"step / floor{at}, strict", "floor ms", "peak RSS GB", "load s"]
        title = "text decoder (the LLaVA's language model)" if g["group"] == "text" else \
            f"LLaVA, image ({g['image_tokens']} tokens) + text"
        rounds = ", ".join(f"{best_gbps(b):.1f}" for b in g.get("round_bandwidth", []))
        lines += [f"### {title}", "", f"Bandwidth around the rounds (GB/s, the better kernel): {rounds}.", "",
                  "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for row in g["rows"]:
            cs = row["cases"]
            engine = row["engine"] + (f" (spin {row['spinning']})" if row.get("spinning") else "")
            cells = [engine, row["graph"], fmt(cs["ttft"]["ttft_ms"])]
            cells += [fmt(cs[c["name"]]["tokens_per_s"]) for c in cols]
            if len(cols) >= 2:
                a, b = cs[cols[-1]["name"]]["step_ms"], cs[cols[0]["name"]]["step_ms"]
                cells.append(f"{a['median'] / b['median']:.2f}" if a and b else "-")
            sof = cs[cols[0]["name"]]["step_over_floor"] if cols else None
            rof = cs[cols[0]["name"]].get("step_over_round_floor") if cols else None
            cells += [fmt(rof, 2) if rof else "-", f"{sof:.2f}x" if sof else "-",
                      f"{row['step_floor_ms']:.3g}" if row["step_floor_ms"] else "-",
                      f"{row['peak_rss_bytes'] / 1e9:.2f}" if row["peak_rss_bytes"] else "-",
                      f"{row['load_s']:.1f}" if row["load_s"] is not None else "-"]
            lines.append("| " + " | ".join(cells) + " |")
        paired = [x for x in g.get("paired_floor", []) if cols and x["case"] == cols[0]["name"]]
        if paired:
            lines += ["", f"Against the float32 step of the same engine, round and case (the bandwidth a "
                      f"memory-bound decode step got at that moment), step / floor @ {cols[0]['context']}: "
                      + "; ".join(f"{x['engine']} {x['graph']} {fmt(x['step_over_floor'], 2)} "
                                  f"({100 / x['step_over_floor']['median']:.0f}% of the bandwidth)" for x in paired)
                      + "."]
        agree = g["shared_graph_agreement"]
        if agree:
            lines += ["", f"Same greedy tokens on a shared graph: {sum(a['same_tokens'] for a in agree)}/{len(agree)} "
                      f"cases ({', '.join(sorted({' = '.join(a['engines']) for a in agree}))})."]
        tf = [row["worker"] for row in g["rows"] if row["engine"] == "transformers"]
        if tf:
            ref = [row["worker"] for row in sorted((row for row in g["rows"] if row["engine"] == "lynx-zoo"),
                                                   key=lambda row: row.get("precision") != "fp32")]
            same = [c["name"] for c in cases if g["tokens"][c["name"]][tf[0]] == g["tokens"][c["name"]][ref[0]]] \
                if ref else []
            lines += ["", f"transformers' greedy tokens equal to `{ref[0] if ref else '-'}`'s in {len(same)}/{len(cases)} "
                      f"cases (another graph: {'float32' if g['group'] == 'llava' else 'the float32 checkpoint'})."]
        lines.append("")
    lines += ["```sh", r["command"] or "(command not recorded)", "```", ""]
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--work", type=Path, default=repo_root() / "target" / "bench-real",
                   help="where the models are built and results/ written (several GB at real size)")
    p.add_argument("--size", choices=["real", "tiny"], default="real",
                   help="real: ViT-B/16 + Qwen2-0.5B-shaped (0.58B); tiny: two layers of 64, for tests")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads of every engine")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds (every case, every engine) first")
    p.add_argument("--new-tokens", type=int, default=16, help="new tokens per run (greedy, EOS banned)")
    p.add_argument("--ttft-tokens", type=int, default=64, help="prompt tokens of the time-to-first-token case")
    p.add_argument("--contexts", default="128,1024", help="contexts at which a decode step is timed")
    p.add_argument("--precisions", default="int4",
                   help="onnxruntime-genai builds for the text group: int4 (blocks of 32), int4-bN (blocks of N: "
                        "16, 32, 64, 128, 256), fp32; e.g. int4,int4-b128,fp32")
    p.add_argument("--groups", default="text,llava", help="text (lynx-zoo, onnxruntime-genai, transformers), llava")
    p.add_argument("--image", type=Path, default=repo_root() / "data" / "test" / "images" / "000000.png")
    p.add_argument("--build-only", action="store_true", help="build the models under --work, run nothing")
    p.add_argument("--lynx-spin", choices=["auto", "on", "off"], default="auto",
                   help="whether lynx-zoo's idle intra-op threads spin (`--spin` of the CLI; auto: for decoders of "
                        "64 MiB or more, as at real size)")
    p.add_argument("--parallel-load", action="store_true",
                   help="start a group's engines at once: faster, but their load times overlap (tests)")


def settings(a: argparse.Namespace) -> Settings:
    def ints(text: str, name: str) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in text.split(",") if x)
        except ValueError:
            raise BenchError(f"`{name}`: `{text}` is not a comma-separated list of whole numbers")

    cmd = os.environ.get("LYNX_BENCH_COMMAND") or shlex.join(["python", "-m", "lynx_export", *sys.argv[1:]])
    return Settings(work=a.work, size=a.size, threads=a.threads, repeats=a.repeats, warmup=a.warmup,
                    new_tokens=a.new_tokens, ttft_tokens=a.ttft_tokens, contexts=ints(a.contexts, "--contexts"),
                    precisions=tuple(x for x in a.precisions.split(",") if x),
                    groups=tuple(x for x in a.groups.split(",") if x), image=a.image, command=cmd,
                    build_only=a.build_only, parallel_load=a.parallel_load,
                    lynx_spin=a.lynx_spin)


if __name__ == "__main__":  # the Python engines' workers; the benchmark is `python -m lynx_export bench-real`
    if sys.argv[1:2] != ["worker"]:
        sys.exit("usage: python -m lynx_export.bench_real worker ... (run the benchmark with `python -m lynx_export bench-real`)")
    sys.exit(serve(sys.argv[2:]))
