"""`build --jobs N`: the training steps of a build in N worker processes, each started as soon as
the steps it needs are done.

Every step (ViT, backbones, feature stores, variants) is cached in files (components.py,
variant_training.py), so workers
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
    from .components import Components
    from .variant_training import VariantTraining

    torch.set_num_threads(threads)
    components = Components(profile, data, work, _log)  # each step loads the data it needs
    if kind == "vit":
        components.vit()
    elif kind == "backbone":
        components.backbone(arg)
    elif kind == "features":
        components.features(arg, frame_counts)
    else:
        VariantTraining(components).trained(create_variant(arg), frame_counts)
    return f"{kind} {arg.name if kind == 'backbone' else arg}"


def plan(variants) -> dict:
    """The training steps of `variants` and what each waits for: {step: (deps, priority)}.

    A step is ("vit", None), ("backbone", BackboneRef), ("features", resolution) or ("variant", name).
    A chat backbone waits for its base, a feature store for the ViT, a variant for its backbone and
    its feature store. Priority (lower first) puts the chain of the large backbone first and the ViT
    next: they are the longest paths through the build (every vision variant waits for the ViT), so
    starting them early keeps every worker busy to the end.
    """
    from .config import BackboneRef, Flavour

    steps: dict = {}

    def backbone(ref: BackboneRef):
        key = ("backbone", ref)
        if key not in steps:
            deps = () if ref.flavour is Flavour.BASE else (backbone(BackboneRef(ref.family, Flavour.BASE, ref.size)),)
            steps[key] = (deps, (ref.size != "large", ref.flavour is not Flavour.BASE, 0, ref.name))
        return key

    for v in variants:
        deps = [backbone(v.backbone)]
        if v.vision_input:
            steps.setdefault(("vit", None), ((), (False, False, 1, "")))
            feats = ("features", v.resolution)
            steps.setdefault(feats, ((("vit", None),), (True, False, 2, str(v.resolution))))
            deps.append(feats)
        steps[("variant", v.name)] = (tuple(deps), (v.backbone.size != "large", True, 3, v.name))
    return steps


def train_parallel(names, profile, data, work, zoo, threads, jobs, frame_counts, log=print):
    """Runs the training steps of `names` in `jobs` processes, each step as soon as the steps it needs
    are done (see `plan`). Every step lands in the shared cache; the export then finds them."""
    import concurrent.futures as cf
    import multiprocessing

    steps = plan([v for v in (create_variant(n) for n in names) if not v.base_variant])
    done: set = set()
    running: dict = {}
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        while len(done) < len(steps):
            ready = sorted((k for k, (deps, _) in steps.items()
                            if k not in done and k not in running.values() and all(d in done for d in deps)),
                           key=lambda k: steps[k][1])
            for key in ready[: jobs - len(running)]:
                kind, arg = key
                running[pool.submit(train_step, profile, data, work, zoo, threads, kind, arg, frame_counts)] = key
            finished, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for f in finished:
                log(f"trained {f.result()}")  # a failed step raises here and fails the build
                done.add(running.pop(f))
