"""The build: pretrain shared components, train each variant, export graphs, goldens and manifests.

Every training step is cached under `work/cache/PROFILE/` by a hash of everything it depends on
(configs, step counts, upstream hashes, data signature), so a finished component or variant is
never retrained and an interrupted build resumes where it stopped.

    data --> tokenizer --> base LLMs --> chat LLMs --+
        \\--> ViT --> features (128 px, 64 px) --------+--> variant stages --> export --> manifest
    components.py                                      variant_training.py   build.py   manifest.py
"""

from __future__ import annotations

import datetime
import functools
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from . import __version__, connectors
from . import graphs as G
from . import fuse, gqa
from . import onnx_io as O
from . import yaml_io
from .components import Components
from .ecosystem import GraphOwner, stamp, stamp_file, write_tokenizer_files
from .config import BackboneRef, ConfigError, LlmFreeze, Quantization, VariantConfig, VisionFreeze, VisionInput
from .data import QARecord, load_annotations
from .features import load_pixels
from .goldens import OrtGraphs, TorchGraphs, greedy
from .manifest import PROMPT, TOKENS, write_manifest
from .models.lynx import LynxModel
from .profiles import Profile
from .recipes import prompt_ids
from .registry import create_variant
from .train import device
from .variant_training import VariantTraining

PARITY_ATOL = 1e-4
# The goldens' tolerance for a dynamically quantised graph (ONNX Runtime is its reference): how it
# rounds activations to uint8 (DynamicQuantizeLinear, and its fusions) differs between x86 kernels,
# so the same graph and inputs give other last logits on another CPU. Measured on `lynx-int8`:
# 0.095 at most between goldens made on an AVX2 AMD EPYC and an AVX-512 VNNI Xeon (greedy tokens
# identical; the int8 graph's own distance to its float graph is 0.18). Greedy tokens must still
# match exactly.
QUANTIZED_ATOL = 0.25
# Bumped when the exported files change for the same trained weights (goldens, layout), so that
# `_up_to_date` re-exports without retraining. 4: producer and `lynx.*` metadata in every graph
# (ecosystem.py; `python -m lynx_export ecosystem` stamps a zoo of revision 3 without retraining).
# 5: the decoder as GroupQueryAttention over one K/V buffer (gqa.py; `python -m lynx_export gqa`
# rewrites a zoo of revision 4 in place). 6: its LM head on each row's own last position, batches
# padded on the right (`python -m lynx_export gqa` upgrades a zoo of revision 5 in place).
# 7: attention blocks as MultiHeadAttention and tanh GELUs as FastGelu in the vision, connector and
# decoder graphs (fuse.py; `python -m lynx_export fuse` rewrites a zoo of revision 6 in place).
EXPORT_REVISION = fuse.REVISION


@dataclass
class Exported:
    """One exported graph: its file, the data files it references, its I/O and parity."""

    path: Path
    data: list
    inputs: list
    outputs: list
    parity: float | None = None


@dataclass
class SharedFiles:
    """Files several variants reference, written once per build: the tokenizer, the frozen ViT's
    data file and graphs (one per resolution), and each frozen backbone's data file and embed graph."""

    tokenizer: Path | None = None
    vit_data: O.DataFile | None = None
    vision: dict[int, Exported] = field(default_factory=dict)  # by resolution
    backbone_data: dict[str, O.DataFile] = field(default_factory=dict)  # by backbone name
    embed: dict[str, Exported] = field(default_factory=dict)  # by backbone name


class Build:
    """The stages of a build: shared components (components.py), variant training
    (variant_training.py), export of each variant's graphs and goldens (here), manifest (manifest.py)."""

    def __init__(self, profile: Profile, data_root: Path, work: Path, zoo: Path, log=print,
                 foundation: Path | None = None):
        self.profile = profile
        self.components = Components(profile, data_root, work, log, foundation)
        self.training = VariantTraining(self.components)
        self.work = Path(work)
        self.zoo = Path(zoo)
        self.onnx_dir = self.zoo / "onnx"
        self.log = log
        self.shared = SharedFiles()

    # -- export ------------------------------------------------------------------------------
    def _rel(self, path: Path) -> str:
        return path.relative_to(self.zoo).as_posix()

    def shared_vit(self, resolutions: list[int]):
        """The frozen ViT's graphs (one per resolution) over one shared data file, written once."""
        if self.shared.vit_data is not None:
            return
        from .models.vision import VisionEncoder
        self.onnx_dir.mkdir(parents=True, exist_ok=True)
        vit = VisionEncoder(self.components.vision_cfg())
        vit.load_state_dict(self.components.vit_state())
        vit.eval()
        protos = {}
        for res in sorted(set(resolutions), reverse=True):
            ins, outs = G.vision_io(vit, res)
            proto = O.export_graph(G.VisionGraph(vit), (torch.randn(2, 3, res, res),), ins, outs)
            fuse.fuse(proto)  # checked with the graph's parity against PyTorch below
            protos[res] = (proto, ins, outs)
        data = O.write_shared(self.onnx_dir / "vit.data", [p[0] for p in protos.values()])
        self.shared.vit_data = data
        for res, (proto, ins, outs) in protos.items():
            path = self.onnx_dir / f"vit-{res}.onnx"
            stamp(proto, "vision", GraphOwner(shared=path.stem))
            used = O.place(proto, path, [data], None)
            diff = O.parity(G.VisionGraph(vit), path, (torch.randn(3, 3, res, res),), [G.NAMES["pixel_values"]])
            _check(diff, f"vit-{res}")
            self.shared.vision[res] = Exported(path, used, ins, outs, diff)

    def shared_backbone(self, ref: BackboneRef):
        """A frozen backbone's weights (embedding and layers) in one data file plus its embed graph."""
        if ref.name in self.shared.backbone_data:
            return
        from .models.decoder import Decoder
        self.onnx_dir.mkdir(parents=True, exist_ok=True)
        dec = Decoder(self.components.decoder_cfg(ref))
        dec.load_state_dict(self.components.backbone_state(ref))
        dec.eval()
        embed_proto, e_in, e_out = self._export_embed(dec)
        dec_proto = self._export_decoder(dec)[0]
        data = O.write_shared(self.onnx_dir / f"{ref.name}.data", [embed_proto, dec_proto])
        self.shared.backbone_data[ref.name] = data
        path = self.onnx_dir / f"{ref.name}.embed.onnx"
        stamp(embed_proto, "embed", GraphOwner(shared=ref.name))
        used = O.place(embed_proto, path, [data], None)
        ids = torch.randint(0, dec.cfg.vocab_size, (2, 7))
        diff = O.parity(G.EmbedGraph(dec), path, (ids,), [G.NAMES["input_ids"]])
        _check(diff, f"{ref.name}.embed")
        self.shared.embed[ref.name] = Exported(path, used, e_in, e_out, diff)

    def shared_files(self, v: VariantConfig, variants: list[VariantConfig]) -> SharedFiles:
        """Shared files this variant references (tokenizer, frozen ViT, frozen backbone)."""
        self.onnx_dir.mkdir(parents=True, exist_ok=True)
        if self.shared.tokenizer is None:
            tok = self.onnx_dir / "tokenizer.json"
            shutil.copyfile(self.components.tokenizer_path(), tok)
            write_tokenizer_files(tok, TOKENS, PROMPT)  # for transformers' AutoTokenizer
            self.shared.tokenizer = tok
        if v.has_vision:
            self.shared_vit([x.resolution for x in variants if x.has_vision])
        if v.recipe.llm is LlmFreeze.FROZEN:
            self.shared_backbone(v.backbone)
        return self.shared

    def _export_embed(self, dec):
        ins, outs = G.embed_io(dec)
        ids = torch.randint(0, dec.cfg.vocab_size, (2, 5))
        return O.export_graph(G.EmbedGraph(dec), (ids,), ins, outs), ins, outs

    def _decoder_args(self, dec, memory: int, batch=2, seq=5, past=3, seed=0):
        g = torch.Generator().manual_seed(seed)
        cfg = dec.cfg
        embeds = torch.randn(batch, seq, cfg.hidden, generator=g)
        mask = torch.ones(batch, past + seq, dtype=torch.long)
        mask[-1, :2] = 0  # a left-padded row
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, past:]
        flat = [torch.randn(batch, cfg.heads, past, cfg.head_dim, generator=g) for _ in range(2 * cfg.layers)]
        flat += [torch.randn(batch, cfg.heads, memory, cfg.head_dim, generator=g)
                 for _ in range(2 * len(dec.cross_layers))]
        return (embeds, mask, pos, *flat)

    def _export_decoder(self, dec, memory: int = 4):
        ins, outs = G.decoder_io(dec, memory if dec.cross_layers else "memory")
        args = self._decoder_args(dec, memory)
        return O.export_graph(G.DecoderGraph(dec), args, ins, outs), ins, outs, args

    def up_to_date(self, v: VariantConfig) -> bool:
        """The zoo holds `v` built from the same config, foundation and export revision, its files intact."""
        return _up_to_date(self.zoo / "variants" / f"{v.name}.yaml", self.training.variant_key(v), self.zoo)

    def export_variant(self, v: VariantConfig, frame_counts: list[int], variants: list[VariantConfig]):
        t0 = time.time()
        key = self.training.variant_key(v)
        manifest_path = self.zoo / "variants" / f"{v.name}.yaml"
        if _up_to_date(manifest_path, key, self.zoo):
            self.log(f"{v.name}: up to date ({key})")
            return manifest_path
        shared = self.shared_files(v, variants)
        source = create_variant(v.base_variant) if v.base_variant else v
        model, stats = self.training.trained(source, frame_counts)
        train_seconds = 0.0 if v.base_variant else stats["train_seconds"]
        t_export = time.time()  # wall = the two stages' training time + this export (no pretraining)
        own = O.DataFile(self.onnx_dir / f"{v.name}.data")
        if own.path.exists():
            own.path.unlink()
        graphs: dict[str, Exported] = {}
        torch.manual_seed(0)

        # vision (the model has a ViT and a connector exactly when the variant has vision)
        if model.vision is not None and model.connector is not None:
            frozen_vit = v.recipe.vision is VisionFreeze.FROZEN
            if frozen_vit:
                graphs["vision"] = shared.vision[v.resolution]
            else:
                ins, outs = G.vision_io(model.vision, v.resolution)
                vg = G.VisionGraph(model.vision)
                px = torch.randn(2, 3, v.resolution, v.resolution)
                path = self.onnx_dir / f"{v.name}.vision.onnx"
                vit_data = [shared.vit_data] if shared.vit_data is not None else []
                proto = O.export_graph(vg, (px,), ins, outs)
                fuse.fuse(proto)
                stamp(proto, "vision", GraphOwner(variant=v.name))
                used = O.place(proto, path, vit_data, own)
                diff = O.parity(vg, path, (torch.randn(3, 3, v.resolution, v.resolution),),
                                [G.NAMES["pixel_values"]])
                graphs["vision"] = Exported(path, used, ins, outs, _check(diff, f"{v.name}.vision"))
            # connector (int8 shares its base variant's connector file)
            vision = self.components.vision_cfg()
            patches = (v.resolution // vision.patch) ** 2
            vdim = vision.width
            kind = connectors.spec(v.connector.kind)
            tokens = kind.graph_tokens(kind.settings(v.connector), v.resolution, vision.patch)
            if tokens is None:
                raise ConfigError(f"connector kind `{v.connector.kind.value}` declares no token axis for its graph")
            ins, outs = G.connector_io(vdim, patches, model.decoder, model.is_cross, tokens)
            cg = G.ConnectorGraph(model.connector, model.is_cross)
            owner = v.base_variant or v.name
            path = self.onnx_dir / f"{owner}.connector.onnx"
            feats = torch.randn(2, v.frames, patches, vdim)
            if not v.base_variant:
                proto = O.export_graph(cg, (feats,), ins, outs)
                fuse.fuse(proto)
                stamp(proto, "connector", GraphOwner(variant=owner))
                O.place(proto, path, [], own)
            used = _external_files(path)
            diff = max(O.parity(cg, path, (feats,), [G.NAMES["image_features"]]),
                       O.parity(cg, path, (torch.randn(3, 1, patches, vdim),), [G.NAMES["image_features"]]))
            graphs["connector"] = Exported(path, used, ins, outs, _check(diff, f"{owner}.connector"))

        # embed + decoder
        dec = model.decoder
        frozen_llm = v.recipe.llm is LlmFreeze.FROZEN
        shared_llm = [shared.backbone_data[v.backbone.name]] if frozen_llm else []
        if frozen_llm:
            graphs["embed"] = shared.embed[v.backbone.name]
        else:
            proto, ins, outs = self._export_embed(dec)
            path = self.onnx_dir / f"{v.name}.embed.onnx"
            stamp(proto, "embed", GraphOwner(variant=v.name))
            used = O.place(proto, path, [], own)
            ids = torch.randint(0, dec.cfg.vocab_size, (2, 7))
            diff = O.parity(G.EmbedGraph(dec), path, (ids,), [G.NAMES["input_ids"]])
            graphs["embed"] = Exported(path, used, ins, outs, _check(diff, f"{v.name}.embed"))
        memory = v.visual_tokens(self.components.vision_cfg().patch) if model.is_cross else 4
        if memory is None:
            raise ConfigError(f"connector kind `{v.connector.kind.value}` declares no memory length")
        proto, ins, outs, args = self._export_decoder(dec, memory)
        path = self.onnx_dir / f"{v.name}.decoder.onnx"
        names = [s.name for s in ins]
        if v.quantization is Quantization.INT8_DYNAMIC:
            diff = self._quantize(proto, path, args, names)
            stamp_file(path, "decoder", GraphOwner(variant=v.name))  # the quantiser writes its own producer
            used = []
        else:
            stamp(proto, "decoder", GraphOwner(variant=v.name))
            used = O.place(proto, path, shared_llm, own)
            diff = max(O.parity(G.DecoderGraph(dec), path, args, names),
                       O.parity(G.DecoderGraph(dec), path, self._prefill_args(dec, memory), names))
            _check(diff, f"{v.name}.decoder")
        graphs["decoder"] = Exported(path, used, ins, outs, diff)
        if own.path.exists() and not own.buf:
            own.path.unlink()

        goldens = self.write_goldens(v, model, graphs)
        # Then the decoder as GroupQueryAttention over one K/V buffer (gqa.py), checked against the
        # graph the goldens and the parity above were made with.
        shape = gqa.shape_of(dec.cfg)
        gqa_diff, _, _ = gqa.rewrite_file(graphs["decoder"].path, shape)
        # and its attention and GELU blocks fused (fuse.py), checked against the graph before
        quantised = v.quantization is Quantization.INT8_DYNAMIC
        fuse.fuse_file(graphs["decoder"].path, lambda a, b: fuse.check_decoder(a, b, shape, quantised),
                       gqa.tolerances(quantised)[0], record=False)
        if shape.rotary:
            graphs["decoder"].inputs = [s for s in graphs["decoder"].inputs if s.name != G.NAMES["position_ids"]]
        sizes = {}
        for exported in graphs.values():
            for f in [exported.path] + list(exported.data):
                sizes[self._rel(f)] = f.stat().st_size
        provenance = {
            "profile": self.profile.name, "config_hash": key, "export_revision": EXPORT_REVISION, "seed": v.recipe.seed,
            "steps": stats["steps"],
            "final_loss": {k: x for k, x in stats["final_loss"].items() if x is not None},  # stages that ran
            "train_seconds": train_seconds, "wall_seconds": round(train_seconds + time.time() - t_export, 1),
            "device": str(device()), "threads": torch.get_num_threads(),
            "data": {"train_seed": self.profile.data_seed, "train_items": len(self.components.data().records),
                     "examples": stats["examples"]},
            "parity": {k: g.parity for k, g in graphs.items()},
            "gqa_rewrite_diff": float(f"{gqa_diff:.3g}"),  # the decoder against its traced graph
            "parity_reference": "onnxruntime float graph" if v.base_variant else "pytorch",
            "exporter": __version__, "torch": torch.__version__.split("+")[0], "onnx": onnx.__version__,
            "onnxruntime": _ort_version(), "opset": O.OPSET,
            "date": datetime.date.today().isoformat(),
        }
        write_manifest(manifest_path, v, self.zoo, self.profile, self.components.vision_cfg(), model, stats, graphs, goldens,
                       provenance)
        self.log(f"{v.name}: exported in {time.time() - t0:.0f}s, parity "
                 + ", ".join(f"{k} {g.parity:.1e}" for k, g in graphs.items()))
        return manifest_path

    def _prefill_args(self, dec, memory: int):
        """Prefill shapes: past length 0, longer sequence, batch 1."""
        args = self._decoder_args(dec, memory, batch=1, seq=11, past=0, seed=1)
        return args

    def _quantize(self, proto, path: Path, args, names) -> float:
        """int8 dynamic quantisation with unsigned weights (exact integer kernels on every x86 CPU; signed
        weights saturate without AVX-512 VNNI: requantize.py); returns the max abs logit diff against the
        float graph."""
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = self.work / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        float_path = tmp / f"{path.stem}.float.onnx"
        onnx.save(proto, str(float_path))
        quantize_dynamic(str(float_path), str(path), weight_type=QuantType.QUInt8)
        onnx.checker.check_model(str(path))
        feeds = {n: a.numpy() for n, a in zip(names, args)}
        ref = O.ort_session(float_path).run(None, feeds)
        got = O.ort_session(path).run(None, feeds)
        return O.max_abs_diff([torch.from_numpy(r) for r in ref], got)

    def golden_items(self):
        """Items for goldens: from the committed test split (data/test, so `media` is a path relative
        to the repository root that the runtime's tests can open) when present, else the val split."""
        from .data import repo_root
        test = repo_root() / "data" / "test"
        if (test / "annotations.jsonl").exists():
            records, media_root = load_annotations(test), repo_root()
        else:
            records, media_root = self.components.data().val, None
        n_images = max(1, self.profile.goldens - 1)
        images: list[QARecord] = []
        seen: set[str] = set()
        for r in records:  # one image per class, in file order
            if not r.is_video and r.cls not in seen and len(images) < n_images:
                images.append(r)
                seen.add(r.cls)
        videos = [r for r in records if r.is_video][:1]
        return images + videos, media_root

    def write_goldens(self, v: VariantConfig, model: LynxModel, graphs: dict) -> Path:
        """Greedy answers of a few val items, in PyTorch and ONNX Runtime; they must agree."""
        codec = self.components.codec()
        picks, media_root = self.golden_items()
        sessions = {name: O.ort_session(g.path) for name, g in graphs.items()}
        ort_b, torch_b = OrtGraphs(sessions), TorchGraphs(model)
        cfg = model.decoder.cfg
        gdir = self.onnx_dir / "goldens"
        gdir.mkdir(parents=True, exist_ok=True)
        items = []
        for r in picks:
            prompt = prompt_ids(codec, r.question)
            pixels, pix_entry = None, None
            if v.has_vision:
                frames = v.frames if r.is_video else 1
                pixels = load_pixels(r.media, r.is_video, frames, v.resolution,
                                     blank=v.vision_input is VisionInput.BLANK).unsqueeze(0).numpy()
                blob = pixels.astype("<f4").tobytes()
                import hashlib
                ppath = gdir / f"pixels-{v.resolution}-{hashlib.sha256(blob).hexdigest()[:8]}.f32"
                if not ppath.exists():
                    ppath.write_bytes(blob)
                pix_entry = {"path": self._rel(ppath), "shape": list(pixels.shape)}
            decode = functools.partial(greedy, layers=cfg.layers, heads=cfg.heads, head_dim=cfg.head_dim,
                                       prefix=model.is_prefix, cross=model.is_cross,
                                       max_new_tokens=self.profile.max_new_tokens, eos=codec.eos)
            o_last, o_tokens = decode(ort_b, pixels, prompt)
            if v.quantization is Quantization.NONE:
                t_last, t_tokens = decode(torch_b, pixels, prompt)
                diff = float(np.max(np.abs(t_last - o_last)))
                if t_tokens != o_tokens or diff > PARITY_ATOL:
                    raise AssertionError(f"{v.name}: goldens differ between PyTorch and ONNX Runtime "
                                         f"(logit diff {diff:.2e}, tokens {t_tokens} vs {o_tokens})")
                last, tokens = t_last, t_tokens
            else:  # the int8 graph has no PyTorch counterpart: ONNX Runtime is the reference
                last, tokens = o_last, o_tokens
            media = r.media.relative_to(media_root).as_posix() if media_root else None
            items.append({"question": r.question, "media": media, "class": r.cls, "answer": r.answers,
                          "pixel_values": pix_entry, "input_ids": [prompt], "attention_mask": [[1] * len(prompt)],
                          "last_logits": [round(float(x), 6) for x in last], "greedy_tokens": tokens,
                          "greedy_text": codec.decode(tokens).strip()})
        path = gdir / f"{v.name}.json"
        doc = {"variant": v.name, "atol": PARITY_ATOL if v.quantization is Quantization.NONE else QUANTIZED_ATOL,
               "reference": "onnxruntime" if v.quantization is not Quantization.NONE else "pytorch",
               "decoding": {"strategy": "greedy", "max_new_tokens": self.profile.max_new_tokens,
                            "min_new_tokens": 0, "stop": "</s> (not emitted)"},
               "items": items}
        path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        return path


def _check(diff: float, what: str) -> float:
    if not diff <= PARITY_ATOL:
        raise AssertionError(f"{what}: onnxruntime differs from PyTorch by {diff:.2e} > {PARITY_ATOL}")
    return diff


def _external_files(path: Path) -> list[Path]:
    model = onnx.load(str(path), load_external_data=False)
    out = []
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                p = path.parent / e.value
                if p not in out:
                    out.append(p)
    return out


def _ort_version() -> str:
    import onnxruntime
    return onnxruntime.__version__


def _up_to_date(manifest: Path, key: str, zoo: Path) -> bool:
    """True when the manifest was written for this config hash and export revision and every file it
    lists verifies (its sha256)."""
    if not manifest.exists():
        return False
    try:
        doc = yaml_io.load(manifest.read_text())
        provenance = doc["provenance"]
        if provenance["config_hash"] != key or provenance["export_revision"] != EXPORT_REVISION:
            return False
        files = [(doc["tokenizer"]["path"], doc["tokenizer"]["sha256"]),
                 (doc["goldens"]["path"], doc["goldens"]["sha256"])]
        for g in doc["graphs"].values():
            files.append((g["path"], g["sha256"]))
            files += [(e["path"], e["sha256"]) for e in g["external_data"]]
    except (yaml_io.YamlError, KeyError, TypeError, AttributeError):
        return False  # not a manifest this exporter wrote: rebuild it
    return all((zoo / p).exists() and O.sha256_file(zoo / p) == h for p, h in files)
