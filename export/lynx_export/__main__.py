"""Command line: `python -m lynx_export {list,build,smoke,reference,foundation,requantize,zoo-doc,import,ecosystem,gqa,fuse,seeded-llava,bench-real}`.

    python -m lynx_export list
    python -m lynx_export build --all              # the whole zoo into the repository
    python -m lynx_export build --all --jobs 2 --threads 1   # the same, two training processes (2-core CPU)
    python -m lynx_export build lynx lynx-xattn    # some variants
    python -m lynx_export smoke --out DIR          # tiny self-contained zoo for CI (< 3 min)
    python -m lynx_export reference --eval data/test   # supervised reference on the ViT features (calibration)
    python -m lynx_export foundation               # tokenizer, ViT, base/chat backbones (resumable; hours)
    torchrun --nproc_per_node N -m lynx_export build|smoke|foundation ...   # data parallel (distributed.py)
    python -m lynx_export import hf DIR --name NAME [--zoo ROOT]   # a Hugging Face LLaVA checkpoint as a variant
    python -m lynx_export ecosystem [--zoo ROOT]   # tokenizer_config.json + ONNX metadata into a built zoo
    python -m lynx_export seeded-llava --out DIR   # the real-size benchmark checkpoint (random weights, ~0.6B)
    python -m lynx_export bench-real [--work DIR]  # lynx-zoo vs onnxruntime-genai vs transformers (scripts/bench-real)

Progress goes to stderr; exit code 0 on success, 1 on a failed build or parity check, 2 on usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from .distributed import alone, barrier, world
from .data import repo_root
from .foundation import PLANS as FOUNDATION_PLANS
from .foundation import STAGES as FOUNDATION_STAGES
from .profiles import PROFILES
from .reference import ENCODERS, ReferenceConfig
from .registry import create_variant, list_variants

SMOKE_VARIANTS = ["lynx", "lynx-xattn", "lynx-blind"]


def log(msg: str):
    if world().is_main:  # torchrun: one voice
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse(argv=None):
    root = repo_root()
    p = argparse.ArgumentParser(prog="python -m lynx_export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="print the registered variants, one per line")
    b = sub.add_parser("build", help="train (cached) and export variants with manifests and goldens")
    b.add_argument("variants", nargs="*", help="variant names (see `list`)")
    b.add_argument("--all", action="store_true", help="every registered variant")
    b.add_argument("--zoo", type=Path, default=root, help="zoo root receiving variants/ and onnx/ (default: repo)")
    b.add_argument("--data", type=Path, default=root / "export" / "work" / "data",
                   help="data root with train/, val/, text/ (generated when missing)")
    b.add_argument("--work", type=Path, default=root / "export" / "work", help="cache and logs")
    b.add_argument("--profile", choices=sorted(PROFILES), default="zoo", help="data and step counts")
    b.add_argument("--foundation", type=Path, default=None,
                   help="foundation folder the variants start from (default: the profile's; zoo: onnx/foundation/)")
    b.add_argument("--threads", type=int, default=2, help="torch CPU threads (per job)")
    b.add_argument("--jobs", type=int, default=1,
                   help="worker processes that compute feature stores and train variants side by side before "
                        "the export (CPU: one per core with --threads 1; on CUDA keep 1)")
    s = sub.add_parser("smoke", help="tiny zoo for CI: build, export, check parity in onnxruntime")
    s.add_argument("--out", type=Path, required=True, help="zoo folder to write (variants/, onnx/)")
    s.add_argument("--data", type=Path, default=None, help="data root (default: OUT/../smoke-data, generated)")
    s.add_argument("--work", type=Path, default=root / "export" / "work", help="cache folder")
    s.add_argument("--variants", default=",".join(SMOKE_VARIANTS), help="comma-separated variants")
    s.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    r = sub.add_parser("reference", help="train a supervised reference on the frozen ViT features (benchmark "
                                         "calibration) and write its predictions for `lynx-zoo data score`")
    r.add_argument("--eval", type=Path, action="append", default=[], metavar="SPLIT_DIR",
                   help="a split folder holding annotations.jsonl to predict (repeatable; default data/test)")
    r.add_argument("--out", type=Path, default=root / "export" / "work" / "reference",
                   help="predictions go to OUT/SPLIT/NAME.jsonl")
    r.add_argument("--blind", action="store_true", help="question only, no picture (the answer prior)")
    r.add_argument("--resolution", type=int, default=128, help="ViT input side, as a variant's `resolution`")
    r.add_argument("--frames", type=int, default=5, help="video frames sampled, as a variant's `frames`")
    r.add_argument("--steps", type=int, default=ReferenceConfig.steps, help="training steps")
    r.add_argument("--encoder", choices=ENCODERS, default="vit",
                   help="frozen features from the zoo's ViT, or from the reference's own conv encoder")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--profile", choices=sorted(PROFILES), default="zoo", help="whose data, ViT and tokenizer")
    r.add_argument("--foundation", type=Path, default=None, help="foundation folder (default: the profile's)")
    r.add_argument("--data", type=Path, default=root / "export" / "work" / "data", help="data root (as `build`)")
    r.add_argument("--work", type=Path, default=root / "export" / "work", help="cache (as `build`)")
    r.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    q = sub.add_parser("requantize", help="re-quantise a shipped int8 variant's decoder from its float base "
                                          "(unsigned weights: exact on every x86 CPU), with its goldens")
    q.add_argument("--variant", default="lynx-int8")
    q.add_argument("--base", default="lynx")
    q.add_argument("--zoo", type=Path, default=root, help="zoo root (default: repo)")
    q.add_argument("--work", type=Path, default=root / "export" / "work", help="scratch folder")
    f = sub.add_parser("foundation", help="build (or resume) the shared pretraining -- tokenizer, ViT, base and chat "
                                          "backbones -- and ship it (export/lynx_export/foundation.py)")
    f.add_argument("--plan", choices=sorted(FOUNDATION_PLANS), default="foundation", help="sizes, seeds and steps")
    f.add_argument("--stages", default=",".join(FOUNDATION_STAGES),
                   help=f"comma-separated stages, run in this order (default: all: {','.join(FOUNDATION_STAGES)})")
    f.add_argument("--backbones", default=None,
                   help="comma-separated backbones of the plan (default: every backbone of the plan)")
    f.add_argument("--out", type=Path, default=root / "onnx" / "foundation", help="where the `ship` stage writes")
    f.add_argument("--work", type=Path, default=root / "export" / "work" / "foundation",
                   help="data, stage outputs and checkpoints (keep it to resume)")
    f.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    z = sub.add_parser("zoo-doc", help="write docs/zoo.md from the manifests (and eval results)")
    z.add_argument("--zoo", type=Path, default=root, help="zoo root (default: repo)")
    z.add_argument("--out", type=Path, default=root / "docs" / "zoo.md")
    z.add_argument("--eval", action="append", default=[], metavar="SPLIT=DIR",
                   help="a `lynx-zoo eval --out DIR` folder scored on SPLIT (repeatable)")
    z.add_argument("--notes", type=Path, default=root / "export" / "zoo-notes.md",
                   help="Markdown appended after the table (findings, rebuild time)")
    z.add_argument("--build-log", type=Path, default=root / "export" / "work" / "logs" / "build-times.json")
    imp = sub.add_parser("import", help="turn a model made elsewhere into a variant (`origin: imported`)")
    kinds = imp.add_subparsers(dest="kind", required=True)
    h = kinds.add_parser("hf", help="a Hugging Face LLaVA checkpoint folder (LlavaForConditionalGeneration: CLIP or "
                                    "SigLIP tower, projector, Llama / Mistral / Qwen2); nothing is downloaded")
    h.add_argument("dir", type=Path, help="the folder `save_pretrained` wrote (or a hub cache snapshot)")
    h.add_argument("--name", required=True, help="variant name: writes ROOT/variants/NAME.yaml and ROOT/onnx/NAME/")
    h.add_argument("--zoo", type=Path, default=root, help="zoo root receiving variants/ and onnx/ (default: repo)")
    h.add_argument("--source", default=None,
                   help="`origin.source` (default: the repo id of a hub cache snapshot, else the folder's name)")
    h.add_argument("--revision", default=None, help="`origin.revision` (default: a hub cache snapshot's commit)")
    h.add_argument("--template", default=None,
                   help="prompt template with `{question}` and the image token once each, in place of the "
                        "checkpoint's chat template (`\\n` in it is a newline)")
    h.add_argument("--max-new-tokens", type=int, default=None,
                   help="decoding default (default: generation_config.json's max_new_tokens, else 64)")
    h.add_argument("--atol", type=float, default=1e-4,
                   help="largest difference to transformers a graph and the prefill logits may show (default 1e-4)")
    h.add_argument("--force", action="store_true", help="replace an existing variant of that name")
    h.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    gq = sub.add_parser("gqa", help="rewrite shipped variants' decoders in place: self-attention as ONNX Runtime's "
                                    "GroupQueryAttention over one K/V buffer, the LM head on each row's last "
                                    "position (same weights, checked against the former graph and right-padded "
                                    "rows against rows alone; the manifest says shared_buffer, padding right); "
                                    "a decoder rewritten at revision 5 gets the LM head only")
    fu = sub.add_parser("fuse", help="rewrite shipped variants' vision, connector and decoder graphs in place: "
                                     "attention blocks as ONNX Runtime's MultiHeadAttention, tanh GELUs as "
                                     "FastGelu (same weights, each graph checked against the one it replaces; "
                                     "the manifests get the new checksums and export revision 7)")
    for rewrite in (gq, fu):
        rewrite.add_argument("variants", nargs="*", help="variant names (variants/NAME.yaml in the zoo)")
        rewrite.add_argument("--all", action="store_true", help="every variant of the zoo")
        rewrite.add_argument("--zoo", type=Path, default=root,
                             help="zoo root holding variants/ and onnx/ (default: repo)")
    e = sub.add_parser("ecosystem", help="add what transformers and ONNX tools read to a zoo built before: "
                                         "tokenizer_config.json and special_tokens_map.json beside each "
                                         "tokenizer.json, producer and lynx.* metadata in each graph, the "
                                         "manifests' checksums rewritten (no retraining; numbers unchanged)")
    e.add_argument("--zoo", type=Path, default=root, help="zoo root holding variants/ and onnx/ (default: repo)")
    sl = sub.add_parser("seeded-llava", help="build the real-size benchmark checkpoint offline: a seeded random-init "
                                             "LLaVA (ViT-B/16 at 224 px, a Qwen2-0.5B-shaped decoder), never committed")
    sl.add_argument("--out", type=Path, required=True, help="folder to write FOLDER/NAME into")
    sl.add_argument("--seed", type=int, default=15)
    from .bench_real import add_arguments as bench_real_arguments
    br = sub.add_parser("bench-real", help="issue 16's real-size benchmark: lynx-zoo vs onnxruntime-genai vs "
                                           "transformers eager, interleaved (export/lynx_export/bench_real.py)")
    bench_real_arguments(br)
    return p.parse_args(argv)


def order(names: list[str]) -> list[str]:
    """The given order, with a quantised variant's base variant built before it."""
    out: list[str] = []
    for name in names:
        base = create_variant(name).base_variant
        if base and base not in out:
            out.append(base)
        if name not in out:
            out.append(name)
    return out


def run_build(names, profile_name, zoo, data, work, threads, jobs=1, foundation=None):
    from .build import Build

    torch.set_num_threads(threads)
    profile = PROFILES[profile_name]
    build = Build(profile, data, work, zoo, log, foundation)
    names = order(names)
    variants = [create_variant(n) for n in names]
    frame_counts = sorted({v.frames for v in variants if v.has_vision} | {1})
    t = time.time()
    build.components.data()
    w = world()
    if w.parallel:  # torchrun: every process trains each variant on its share of each batch
        if jobs > 1:
            raise ValueError("--jobs N and torchrun do not mix: under torchrun the processes share each batch")
        build.components.foundation()
        for v in variants:
            if not v.base_variant and not build.up_to_date(v):
                build.training.trained(v, frame_counts)
    elif jobs > 1:
        foundation = build.components.foundation().folder  # built (smoke) or verified once, before workers read it
        from .parallel import train_parallel

        train_parallel(names, profile, data, work, zoo, threads, jobs, frame_counts, log, foundation)
    if w.is_main:
        with alone():  # export, goldens and manifests: rank 0, from the trained (cached) variants
            _export(build, variants, frame_counts, profile_name, work, jobs, t)
    barrier()


def _export(build, variants, frame_counts, profile_name, work, jobs, t):
    # shared files are written once, when a variant first needs them, and never rewritten
    for v in variants:
        build.export_variant(v, frame_counts, variants)
    seconds = time.time() - t
    log(f"built {len(variants)} variants in {seconds:.0f}s")
    record = Path(work) / "logs" / "build-times.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    import json
    import platform
    record.write_text(json.dumps({"profile": profile_name, "variants": len(variants), "seconds": round(seconds, 1),
                                  "jobs": jobs,
                                  "machine": f"{platform.machine()} {os.cpu_count()} cores, {jobs} jobs x "
                                             f"{torch.get_num_threads()} threads, "
                                             f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
                                  "note": "one run of `build`; cached steps are not rebuilt"}))


def main(argv=None) -> int:
    args = parse(argv)
    try:
        if args.cmd == "list":
            for n in list_variants():
                print(n)
            return 0
        if args.cmd == "build":
            names = list_variants() if args.all else args.variants
            if not names:
                print("error: name variants or pass --all", file=sys.stderr)
                return 2
            if args.jobs < 1:
                print("error: --jobs must be at least 1", file=sys.stderr)
                return 2
            run_build(names, args.profile, args.zoo, args.data, args.work, args.threads, args.jobs, args.foundation)
            return 0
        if args.cmd == "reference":
            from .components import Components
            from .reference import run_reference

            torch.set_num_threads(args.threads)
            components = Components(PROFILES[args.profile], args.data, args.work, log, args.foundation)
            splits = args.eval or [repo_root() / "data" / "test"]
            run_reference(components, splits, args.out, ReferenceConfig(steps=args.steps), args.blind, args.resolution,
                          args.frames, args.seed, log, args.encoder)
            return 0
        if args.cmd == "foundation":
            from .foundation import Foundation
            torch.set_num_threads(args.threads)
            plan = FOUNDATION_PLANS[args.plan]
            stages = [x for x in args.stages.split(",") if x]
            backbones = [x for x in args.backbones.split(",") if x] if args.backbones else list(plan.backbones)
            Foundation(plan, args.work, args.out, log).build(stages, backbones)
            return 0
        if args.cmd == "requantize":
            from .requantize import requantize
            print(requantize(args.zoo, args.variant, args.base, args.work / "tmp"))
            return 0
        if args.cmd == "zoo-doc":
            from .report import write
            evals = dict(e.split("=", 1) for e in args.eval)
            notes = args.notes.read_text() if args.notes and args.notes.exists() else ""
            write(args.zoo, args.out, evals, args.build_log, notes)
            return 0
        if args.cmd == "import":
            from .importers.hf import ImportOptions, import_hf

            torch.set_num_threads(args.threads)
            opts = ImportOptions(name=args.name, zoo=args.zoo, source=args.source, revision=args.revision,
                                 template=args.template.replace("\\n", "\n") if args.template else None,
                                 max_new_tokens=args.max_new_tokens, atol=args.atol,
                                 force=args.force)
            print(import_hf(args.dir, opts, log))
            return 0
        if args.cmd == "seeded-llava":
            from .importers.seeded_llava import REAL_SIZE_SPEC, build_checkpoint
            print(build_checkpoint(REAL_SIZE_SPEC, args.out, args.seed))
            return 0
        if args.cmd == "bench-real":
            from .bench_real import run as bench_real, settings
            bench_real(settings(args))
            return 0
        if args.cmd in ("gqa", "fuse"):
            names = sorted(p.stem for p in (args.zoo / "variants").glob("*.yaml")) if args.all else args.variants
            if not names:
                print("error: name variants or pass --all", file=sys.stderr)
                return 2
            if args.cmd == "gqa":
                from .gqa import apply as gqa_apply
                for n in names:
                    print(gqa_apply(args.zoo, n, log))
            else:
                from .fuse import ZooFusion
                zoo = ZooFusion(args.zoo, log)
                for n in names:
                    print(zoo.variant(n))
            return 0
        if args.cmd == "ecosystem":
            from .ecosystem import stamp_zoo
            print(stamp_zoo(args.zoo, log).summary())
            return 0
        if args.cmd == "smoke":
            out = args.out.resolve()
            data = args.data or out.parent / f"{out.name}-data"
            names = [n for n in args.variants.split(",") if n]
            run_build(names, "smoke", out, data, args.work, args.threads)
            return 0
    except KeyError as e:
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 2
    except (AssertionError, ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
