"""`build --jobs N`: the training steps of a build in N worker processes.

Every step (ViT, backbones, feature stores, variants) is cached in files by `Build`, so workers
share nothing but the cache folder; the parent process then exports every variant from the cache.
Workers are spawned (not forked) and run `--threads` torch threads each.
"""

from __future__ import annotations

import sys
import time

import torch

from .registry import create_variant


def _log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def train_step(profile, data, work, zoo, threads, kind, arg, frame_counts):
    """One cached build step in a worker process (`--jobs`): the cache is shared through files."""
    from .build import Build

    torch.set_num_threads(threads)
    build = Build(profile, data, work, zoo, _log)  # each step loads the data it needs
    if kind == "vit":
        build.vit()
    elif kind == "backbone":
        build.backbone(arg)
    elif kind == "features":
        build.features(arg, frame_counts)
    else:
        build.trained(create_variant(arg), frame_counts)
    return kind, str(arg)


def train_parallel(names, profile, data, work, zoo, threads, jobs, frame_counts, log=print):
    """Runs the training steps of `names` in `jobs` processes, in dependency waves: ViT and backbones,
    then features, then variants. Every step lands in the shared cache; the export then finds them."""
    import concurrent.futures as cf
    import multiprocessing

    from .config import BackboneRef, Flavour

    variants = [create_variant(n) for n in names]
    trained = [v for v in variants if not v.base_variant]
    refs = {v.backbone.name: v.backbone for v in trained}
    bases = {BackboneRef(r.family, Flavour.BASE, r.size) for r in refs.values()}
    chats = [r for r in refs.values() if r.flavour is Flavour.CHAT]
    resolutions = sorted({v.resolution for v in trained if v.vision_input})
    # the slowest variants (large backbones) first, so that the pool does not end on one long job
    ordered = sorted(trained, key=lambda v: v.backbone.size != "large")
    waves = [[("backbone", b) for b in sorted(bases, key=lambda b: (b.size != "large", b.name))] + [("vit", None)],
             [("backbone", c) for c in chats] + [("features", r) for r in resolutions],
             [("variant", v.name) for v in ordered]]
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        for wave in waves:
            futures = [pool.submit(train_step, profile, data, work, zoo, threads, kind, arg, frame_counts)
                       for kind, arg in wave]
            for f in cf.as_completed(futures):
                kind, arg = f.result()
                log(f"trained {kind} {arg}")
