"""Gate 1 before a stage ends (issue 13): probes a foundation build's backbone from the checkpoint
its base or chat stage is writing, so a run of hours shows early whether it is on course.

- `--stage base`: in-context binding, the next token after "The {colour} object is a" in the last
  200 picture passages of the corpus (lm_binding_probe.py's measure; the base has read them).
- `--stage chat`: the caption probe of gate 1 on the build's val split (the foundation's `probe`
  stage, on the checkpoint instead of the finished stage).

    PYTHONPATH=export .venv/bin/python export/probes/checkpoint_probe.py --backbone llama-small --stage base
    PYTHONPATH=export .venv/bin/python export/probes/checkpoint_probe.py --backbone llama-small --stage chat

Prints one JSON line: the stage's step, its loss, and the measure. Reads the checkpoint only; the
build writing it goes on undisturbed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from lynx_export.data import repo_root
from lynx_export.foundation import PLANS, Foundation, caption_probe
from lynx_export.models.decoder import Decoder


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=None, help="the build's --work folder (default export/work/foundation)")
    p.add_argument("--backbone", default="llama-small")
    p.add_argument("--stage", choices=["base", "chat"], required=True)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    build = Foundation(PLANS["foundation"], args.work or repo_root() / "export" / "work" / "foundation",
                       Path("/nonexistent"))
    codec = build.codec()
    key = build.base_key(args.backbone) if args.stage == "base" else build.chat_key(args.backbone)
    name = f"{args.backbone}-{args.stage}"
    weights, _, ckpt = build.stage_files(name, key)
    model = Decoder(build.plan.decoder(args.backbone, codec.vocab_size))
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["modules"]["model"])
        step, steps = state["step"], state["steps"]
        loss = state["curve"][-1][1] if state["curve"] else None
    elif weights.exists():
        model.load_state_dict(build.weights(name, key))
        step = steps = None
        loss = None
    else:
        raise SystemExit(f"{name}: no checkpoint {ckpt} and no finished stage {weights} yet")
    record: dict[str, object] = {"backbone": args.backbone, "stage": args.stage, "step": step, "steps": steps,
                                 "loss": loss}
    t = time.time()
    if args.stage == "base":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from lm_binding_probe import FACT, binding_accuracy  # beside this file

        scenes = [line for line in (build.text() / "corpus.txt").open() if line.startswith("Picture:")]
        acc, n = binding_accuracy(model, codec, [s for s in scenes[-200:] if FACT.search(s)])
        record.update(object_binding=round(acc, 3), facts=n)
    else:
        record["val"] = caption_probe(model, codec, build.probe_split(), build.generator, build.work / "probe-ckpt")
    record["seconds"] = round(time.time() - t, 1)
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
