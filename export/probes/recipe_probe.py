"""Recipe probe: trains one variant with overrides on the cached zoo components and scores greedy
answers on 300 val items with a simple contains-match (not the benchmark scorer).

    PYTHONPATH=export .venv/bin/python export/probes/recipe_probe.py lynx 2000 "{'recipe': {'lr': 3e-3}}"
    PYTHONPATH=export .venv/bin/python export/probes/recipe_probe.py --chat /tmp/chat64.pt lynx 1200

`--chat` replaces the small LLaMA chat backbone by a checkpoint of `backbone_probe.py`; `--split
data/test` scores the first 300 items of another split (half of the test phrasings are held out);
`--split` given several times scores each split with the one trained model (a recipe chosen on val,
reported on data/test and a fresh split, as docs/zoo.md's seeds are).

`--work`, `--data` and `--foundation` point it at another build (as `build`'s flags); `--predictions
FILE` also writes every item's answer (`--n` items, default 300) for `lynx-zoo data score`, the
benchmark's own scorer with paired tests:

    PYTHONPATH=export .venv/bin/python export/probes/recipe_probe.py --work /tmp/fnd/work --data /tmp/fnd/data \
        --n 600 --predictions /tmp/lev/lynx-2400.jsonl lynx 2400

`--question-aware` gives a resampler variant's latents the question too (InstructBLIP's
instruction-aware Q-Former, in small): they attend to the last 48 prompt-token embeddings of the
frozen LLM, through one new linear map, beside the image features. Probe-only: nothing exports it.

`--prefix-norm` holds every visual token at the root mean square of the LLM's token embeddings
(the resampler is initialised at that scale; its tokens grow several times above it in training).
Probe-only, like the two above.

`--answer-weight W` multiplies the loss of each response's answer tokens (the tokens that spell part
of a word of the record's answers) by W, the loss normalised by the weights: the template words of a
response ("The triangle is ...") otherwise carry most of it.

Needs a finished `build` (tokenizer, ViT, backbones and features in WORK/cache/zoo).
"""
import argparse
import re
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import lynx_export.config as C
import lynx_export.train as T
from lynx_export.components import Components
from lynx_export.data import load_annotations, repo_root
from lynx_export.features import load_pixels
from lynx_export.goldens import TorchGraphs, greedy
from lynx_export.models.lynx import IGNORE
from lynx_export.profiles import PROFILES
from lynx_export.recipes import prompt_ids
from lynx_export.reference import write_predictions
from lynx_export.registry import create_variant
from lynx_export.train import train_variant
from lynx_export.variant_training import VariantTraining

torch.set_num_threads(1)
root = repo_root()
QUESTION_TOKENS = 48  # prompt tokens the question-aware latents see (the last ones; zero-padded)


class QuestionAwareResampler(nn.Module):
    """A PerceiverResampler whose latents attend to [media; question; latents]. The question
    (B, QUESTION_TOKENS, hidden) is set on the module before each call, so the model's loss and
    the graphs' greedy decoding call it unchanged."""

    def __init__(self, inner, hidden: int):
        super().__init__()
        self.inner = inner
        self.q_proj = nn.Linear(hidden, inner.in_proj.out_features)
        self.question: torch.Tensor | None = None

    def forward(self, image_features):
        context = self.q_proj(self.question) if self.question is not None else None
        return self.inner(image_features, context=context)


def question_embeds(decoder, ids: torch.Tensor, prompt_len: list[int]) -> torch.Tensor:
    """(B, QUESTION_TOKENS, hidden): each row's last prompt-token embeddings, zero-padded."""
    with torch.no_grad():
        emb = decoder.embed(ids)
    out = emb.new_zeros(ids.shape[0], QUESTION_TOKENS, emb.shape[-1])
    for i, k in enumerate(prompt_len):
        take = emb[i, max(0, k - QUESTION_TOKENS):k]
        out[i, :take.shape[0]] = take
    return out


def make_question_aware(model) -> QuestionAwareResampler:
    aware = model.connector = QuestionAwareResampler(model.connector, model.decoder.cfg.hidden)
    plain_loss = model.loss

    def loss(ids, mask, labels, feats=None):
        prompt_len = (labels != IGNORE).float().argmax(dim=1).clamp(min=1).tolist()  # right-padded rows
        aware.question = question_embeds(model.decoder, ids, prompt_len) if feats is not None else None
        return plain_loss(ids, mask, labels, feats)
    model.loss = loss
    return aware


class NormalizedPrefix(nn.Module):
    """The connector's tokens, each scaled to a root mean square of `Decoder.embedding_std` (the
    standard deviation of the LLM's token embeddings, whose mean is near 0): the resampler starts at that scale (`match_output_scale`) but its
    tokens grow 2.5-6x above it in training, which shrinks the layers' share of those positions'
    residual stream."""

    def __init__(self, inner, rms: float):
        super().__init__()
        self.inner = inner
        self.rms = rms

    def forward(self, image_features):
        out = self.inner(image_features)
        return out * (self.rms / out.pow(2).mean(-1, keepdim=True).add(1e-12).sqrt())


ap = argparse.ArgumentParser()
ap.add_argument("--chat", type=Path, help="a backbone_probe.py checkpoint instead of llama-chat-small")
ap.add_argument("--split", type=Path, action="append",
                help="score this split folder (e.g. data/test) instead of val; repeat it to score several "
                     "splits with the one trained model (`--predictions X.jsonl` then writes X.FOLDER.jsonl each)")
ap.add_argument("--work", type=Path, default=root / "export/work", help="build cache (as `build --work`)")
ap.add_argument("--data", type=Path, default=root / "export/work/data", help="data root (as `build --data`)")
ap.add_argument("--foundation", type=Path, help="foundation folder (default: onnx/foundation/)")
ap.add_argument("--n", type=int, default=300, help="items of the split scored")
ap.add_argument("--predictions", type=Path, help="write the answers here for `lynx-zoo data score`")
ap.add_argument("--question-aware", action="store_true", help="the resampler's latents see the question")
ap.add_argument("--answer-weight", type=float, help="loss weight of the answer tokens in QA responses")
ap.add_argument("--prefix-norm", action="store_true", help="each visual token held at the LLM's embedding scale")
ap.add_argument("name")
ap.add_argument("steps", type=int)
ap.add_argument("overrides", nargs="?", default="{}")
args = ap.parse_args()
ANSWER_WEIGHTS: dict[tuple, torch.Tensor] = {}  # example ids -> per-token loss weights (answer-weight)


def answer_weighted_qa_examples(codec, weight: float):
    """train.qa_examples, recording each QA example's per-token weights (answer tokens: weight)."""
    plain = T.qa_examples

    def qa_examples(codec_, records, recipe):
        out = plain(codec_, records, recipe)
        assert len(out) == len(records), "answer weights need a recipe that keeps every record"
        for r, e in zip(records, out):
            words = {x for a in r.answers for x in re.findall(r"[a-z0-9]+", a.lower())}
            w = torch.ones(len(e.ids))
            for k, (tok, label) in enumerate(zip(e.ids, e.labels)):
                piece = re.sub(r"[^a-z0-9]", "", codec.decode([tok]).lower())
                if label != IGNORE and piece and any(piece == x or (len(piece) > 1 and piece in x) for x in words):
                    w[k] = weight
            ANSWER_WEIGHTS[tuple(e.ids)] = w
        return out
    return qa_examples


def make_answer_weighted(model):
    """model.loss with each labelled token's cross-entropy weighted (LynxModel.loss's token_weights)."""
    plain_loss = model.loss

    def loss(ids, mask, labels, feats=None):
        w = torch.ones(ids.shape, dtype=torch.float32)
        for i in range(ids.shape[0]):
            n = int(mask[i].sum())
            row = ANSWER_WEIGHTS.get(tuple(ids[i, :n].tolist()))
            if row is not None:
                w[i, :n] = row
        return plain_loss(ids, mask, labels, feats, token_weights=w)
    model.loss = loss


b = Components(PROFILES["zoo"], args.data, args.work, log=lambda m: None, foundation=args.foundation)
data = b.data()
codec = b.codec()
name, steps, overrides = args.name, args.steps, eval(args.overrides)
v = create_variant(name, **overrides)
v = C.replace(v, recipe={"instruction_steps": steps})
print("recipe", v.recipe)
chat = torch.load(args.chat, weights_only=True) if args.chat and v.backbone.name == "llama-chat-small" else None
model = VariantTraining(b).initial_model(v, chat)  # as the build starts it: seeded, pretrained weights loaded
store = b.features(v.resolution, [1, 5]) if v.has_vision else None
aware = make_question_aware(model) if args.question_aware else None
if args.prefix_norm:
    model.connector = NormalizedPrefix(model.connector, model.decoder.embedding_std)
    print("prefix rms", model.decoder.embedding_std)
emb = model.decoder.embed_tokens.weight
print("embed std", emb.std().item(), "row norm", emb.norm(dim=-1).mean().item())
if args.answer_weight is not None:
    T.qa_examples = answer_weighted_qa_examples(codec, args.answer_weight)
    make_answer_weighted(model)
t = time.time()
stats = train_variant(model, codec, store, data.records, data.captions, data.instructions, 1.0, log=print)
if args.answer_weight is not None:
    print("answer-weighted QA examples:", sum(bool((w != 1).any()) for w in ANSWER_WEIGHTS.values()), "of", len(ANSWER_WEIGHTS))
print("train", time.time() - t, stats["final_loss"])
tg = TorchGraphs(model)
def norm(s): return " ".join(re.findall(r"[a-z0-9]+", s.lower()))
cfg = model.decoder.cfg
splits = [(folder.name, load_annotations(folder)) for folder in args.split] if args.split else [("val", data.val)]
for split_name, items in splits:
    val = items[:args.n]
    correct: dict[str, list[bool]] = {}
    answers: list[str] = []
    for r in val:
        px = None
        if v.has_vision:
            px = load_pixels(r.media, r.is_video, v.frames if r.is_video else 1, v.resolution,
                             blank=v.vision_input == C.VisionInput.BLANK).unsqueeze(0).numpy()
        prompt = prompt_ids(codec, r.question)
        if aware is not None:
            aware.question = question_embeds(model.decoder, torch.tensor([prompt]), [len(prompt)])
        _, toks = greedy(tg, px, prompt, cfg.layers, cfg.heads, cfg.head_dim, model.is_prefix, model.is_cross, 16,
                         codec.eos)
        answers.append(codec.decode(toks))
        pred = norm(answers[-1])
        ok = any(f" {norm(a)} " in f" {pred} " for a in r.answers)
        correct.setdefault(r.cls, []).append(ok)
    allc = [x for oks in correct.values() for x in oks]
    if args.predictions:
        out = args.predictions if len(splits) == 1 else args.predictions.with_suffix(f".{split_name}.jsonl")
        write_predictions(out, val, answers, f"{name} {overrides}")
    print("ACC", split_name, name, overrides, round(100*np.mean(allc),1),
          {k: round(100*np.mean(oks)) for k, oks in correct.items()})
with torch.no_grad():
    if store is not None and model.connector is not None and model.is_prefix:
        f = store.gather([[0]])
        print("visual std", model.connector(f).std().item())
