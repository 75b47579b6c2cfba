"""Recipe probe: trains one variant with overrides on the cached zoo components and scores greedy
answers on 300 val items with a simple contains-match (not the benchmark scorer).

    PYTHONPATH=export .venv/bin/python export/probes/recipe_probe.py lynx 2000 "{'recipe': {'lr': 3e-3}}"
    PYTHONPATH=export .venv/bin/python export/probes/recipe_probe.py --chat /tmp/chat64.pt lynx 1200

`--chat` replaces the small LLaMA chat backbone by a checkpoint of `backbone_probe.py`; `--split
data/test` scores the first 300 items of another split (half of the test phrasings are held out).

Needs a finished `build` (tokenizer, ViT, backbones and features in export/work/cache/zoo).
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
from lynx_export.registry import create_variant
from lynx_export.train import train_variant
from lynx_export.variant_training import VariantTraining

torch.set_num_threads(1)
root = repo_root()
ap = argparse.ArgumentParser()
ap.add_argument("--chat", type=Path, help="a backbone_probe.py checkpoint instead of llama-chat-small")
ap.add_argument("--split", type=Path, help="score this split folder (e.g. data/test) instead of val")
ap.add_argument("name")
ap.add_argument("steps", type=int)
ap.add_argument("overrides", nargs="?", default="{}")
args = ap.parse_args()
b = Components(PROFILES["zoo"], root/"export/work/data", root/"export/work", log=lambda m: None)
data = b.data()
codec = b.codec()
name, steps, overrides = args.name, args.steps, eval(args.overrides)
v = create_variant(name, **overrides)
v = C.replace(v, recipe={"instruction_steps": steps})
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
val = (load_annotations(args.split) if args.split else data.val)[:300]
correct: dict[str, list[bool]] = {}
cfg = model.decoder.cfg
for r in val:
    px = None
    if v.has_vision:
        px = load_pixels(r.media, r.is_video, v.frames if r.is_video else 1, v.resolution).unsqueeze(0).numpy()
    _, toks = greedy(tg, px, prompt_ids(codec, r.question), cfg.layers, cfg.heads, cfg.head_dim, model.is_prefix, model.is_cross, 16, codec.eos)
    pred = norm(codec.decode(toks))
    ok = any(f" {norm(a)} " in f" {pred} " for a in r.answers)
    correct.setdefault(r.cls, []).append(ok)
allc = [x for oks in correct.values() for x in oks]
print("ACC", name, overrides, round(100*np.mean(allc),1), {k: round(100*np.mean(oks)) for k, oks in correct.items()})
with torch.no_grad():
    if store is not None and model.connector is not None and model.is_prefix:
        f = store.gather([[0]])
        print("visual std", model.connector(f).std().item())
