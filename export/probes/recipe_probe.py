"""Recipe probe: trains one variant with overrides on the cached zoo components and scores greedy
answers on 300 val items with a simple contains-match (not the benchmark scorer).

    PYTHONPATH=export .venv/bin/python export/probes/recipe_probe.py lynx 2000 "{'recipe': {'lr': 3e-3}}"
    PYTHONPATH=export .venv/bin/python export/probes/recipe_probe.py --chat /tmp/chat64.pt lynx 1200

`--chat` replaces the small LLaMA chat backbone by a checkpoint of `backbone_probe.py`; `--split
data/test` scores the first 300 items of another split (half of the test phrasings are held out).

`--work`, `--data` and `--foundation` point it at another build (as `build`'s flags); `--predictions
FILE` also writes every item's answer (`--n` items, default 300) for `lynx-zoo data score`, the
benchmark's own scorer with paired tests:

    PYTHONPATH=export .venv/bin/python export/probes/recipe_probe.py --work /tmp/fnd/work --data /tmp/fnd/data \
        --n 600 --predictions /tmp/lev/lynx-2400.jsonl lynx 2400

Needs a finished `build` (tokenizer, ViT, backbones and features in WORK/cache/zoo).
"""
import argparse
import re
import time
from pathlib import Path

import numpy as np
import torch

import lynx_export.config as C
from lynx_export.components import Components
from lynx_export.data import load_annotations, repo_root
from lynx_export.features import load_pixels
from lynx_export.goldens import TorchGraphs, greedy
from lynx_export.profiles import PROFILES
from lynx_export.recipes import prompt_ids
from lynx_export.reference import write_predictions
from lynx_export.registry import create_variant
from lynx_export.train import train_variant
from lynx_export.variant_training import VariantTraining

torch.set_num_threads(1)
root = repo_root()
ap = argparse.ArgumentParser()
ap.add_argument("--chat", type=Path, help="a backbone_probe.py checkpoint instead of llama-chat-small")
ap.add_argument("--split", type=Path, help="score this split folder (e.g. data/test) instead of val")
ap.add_argument("--work", type=Path, default=root / "export/work", help="build cache (as `build --work`)")
ap.add_argument("--data", type=Path, default=root / "export/work/data", help="data root (as `build --data`)")
ap.add_argument("--foundation", type=Path, help="foundation folder (default: onnx/foundation/)")
ap.add_argument("--n", type=int, default=300, help="items of the split scored")
ap.add_argument("--predictions", type=Path, help="write the answers here for `lynx-zoo data score`")
ap.add_argument("name")
ap.add_argument("steps", type=int)
ap.add_argument("overrides", nargs="?", default="{}")
args = ap.parse_args()
b = Components(PROFILES["zoo"], args.data, args.work, log=lambda m: None, foundation=args.foundation)
data = b.data()
codec = b.codec()
name, steps, overrides = args.name, args.steps, eval(args.overrides)
v = create_variant(name, **overrides)
v = C.replace(v, recipe={"instruction_steps": steps})
print("recipe", v.recipe)
model = VariantTraining(b).build_model(v)
if args.chat and v.backbone.name == "llama-chat-small":
    backbone = torch.load(args.chat, weights_only=True)
else:
    backbone = b.backbone_state(v.backbone)
model.load_pretrained(b.vit_state() if v.has_vision else None, backbone)
store = b.features(v.resolution, [1, 5]) if v.has_vision else None
emb = model.decoder.embed_tokens.weight
print("embed std", emb.std().item(), "row norm", emb.norm(dim=-1).mean().item())
t = time.time()
stats = train_variant(model, codec, store, data.records, data.captions, data.instructions, 1.0, log=print)
print("train", time.time() - t, stats["final_loss"])
tg = TorchGraphs(model)
def norm(s): return " ".join(re.findall(r"[a-z0-9]+", s.lower()))
val = (load_annotations(args.split) if args.split else data.val)[:args.n]
correct: dict[str, list[bool]] = {}
answers: list[str] = []
cfg = model.decoder.cfg
for r in val:
    px = None
    if v.has_vision:
        px = load_pixels(r.media, r.is_video, v.frames if r.is_video else 1, v.resolution,
                         blank=v.vision_input == C.VisionInput.BLANK).unsqueeze(0).numpy()
    _, toks = greedy(tg, px, prompt_ids(codec, r.question), cfg.layers, cfg.heads, cfg.head_dim, model.is_prefix, model.is_cross, 16, codec.eos)
    answers.append(codec.decode(toks))
    pred = norm(answers[-1])
    ok = any(f" {norm(a)} " in f" {pred} " for a in r.answers)
    correct.setdefault(r.cls, []).append(ok)
allc = [x for oks in correct.values() for x in oks]
if args.predictions:
    write_predictions(args.predictions, val, answers, f"{name} {overrides}")
print("ACC", name, overrides, round(100*np.mean(allc),1), {k: round(100*np.mean(oks)) for k, oks in correct.items()})
with torch.no_grad():
    if store is not None and model.connector is not None and model.is_prefix:
        f = store.gather([[0]])
        print("visual std", model.connector(f).std().item())
