"""`build --jobs N`: the training steps of a build in N worker processes, each started as soon as
the steps it needs are done.

Every step (feature stores, variants) is cached in files (components.py, variant_training.py), so
workers
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


def train_step(profile, data, work, zoo, threads, kind, arg, frame_counts, foundation):
    """One cached build step in a worker process (`--jobs`): the cache is shared through files."""
    from .components import Components
    from .variant_training import VariantTraining

    torch.set_num_threads(threads)
    components = Components(profile, data, work, _log, foundation)  # each step loads the data it needs
    if kind == "features":
        components.features(arg, frame_counts)
    else:
        VariantTraining(components).trained(create_variant(arg), frame_counts)
    return f"{kind} {arg}"


def plan(variants) -> dict:
    """The training steps of `variants` and what each waits for: {step: (deps, priority)}.

    A step is ("features", resolution) or ("variant", name); the foundation (tokenizer, ViT,
    backbones) is read, not trained. A variant that sees (or sees the blank picture) waits for the
    feature store of its resolution. Priority (lower first) puts the feature stores first (every
    such variant waits for one) and the large backbone's variants next: they train longest, so
    starting them early keeps every worker busy to the end.
    """
    steps: dict = {}
    for v in variants:
        deps = []
        if v.has_vision:
            feats = ("features", v.resolution)
            steps.setdefault(feats, ((), (0, str(v.resolution))))
            deps.append(feats)
        steps[("variant", v.name)] = (tuple(deps), (1 if v.backbone.size == "large" else 2, v.name))
    return steps


def train_parallel(names, profile, data, work, zoo, threads, jobs, frame_counts, log=print, foundation=None):
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
                running[pool.submit(train_step, profile, data, work, zoo, threads, kind, arg, frame_counts, foundation)] = key
            finished, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
            for f in finished:
                log(f"trained {f.result()}")  # a failed step raises here and fails the build
                done.add(running.pop(f))
