"""Prefill with every position's logits against the last position's only (issue 16).

Exports one randomly initialised decoder twice -- the graph as the zoo exported it before
(logits (batch, seq, vocab)) and as it does now (batch, 1, vocab) -- and times a prefill of each in
ONNX Runtime on the CPU, interleaved, one thread, with the same inputs; prints the medians and the
ratio. The default size is the foundation's `llama-small`; `--hidden 896 --layers 4 --vocab 151936`
shows a deployed model's vocabulary.

    PYTHONPATH=export .venv/bin/python export/probes/prefill_logits_bench.py --seq 80 --runs 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lynx_export import graphs as G
from lynx_export import onnx_io as O
from lynx_export.config import DecoderConfig, Family
from lynx_export.models.decoder import Decoder


class AllPositions(G.DecoderGraph):
    """The decoder graph as exported before: logits for every position."""

    def forward(self, inputs_embeds, attention_mask, position_ids, *flat):
        past = [(flat[2 * i], flat[2 * i + 1]) for i in range(self.n_layers)]
        logits, presents = self.decoder(inputs_embeds, attention_mask, position_ids, past)
        return (logits,) + tuple(t for kv in presents for t in kv)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=1536)
    p.add_argument("--seq", type=int, default=80, help="prompt positions (visual tokens + text)")
    p.add_argument("--runs", type=int, default=200)
    args = p.parse_args()
    torch.manual_seed(0)
    cfg = DecoderConfig(Family.LLAMA, vocab_size=args.vocab, hidden=args.hidden, layers=args.layers,
                        heads=args.heads, ffn=2 * args.hidden, max_positions=max(256, args.seq),
                        scaled_embedding=True, tie_word_embeddings=False)
    dec = Decoder(cfg).eval()
    ins, outs = G.decoder_io(dec)
    names = [s.name for s in ins]
    feeds_t = (torch.randn(1, args.seq, cfg.hidden), torch.ones(1, args.seq, dtype=torch.long),
               torch.arange(args.seq).unsqueeze(0),
               *[torch.zeros(1, cfg.heads, 0, cfg.head_dim) for _ in range(2 * cfg.layers)])
    feeds = {n: a.numpy() for n, a in zip(names, feeds_t)}
    all_outs = [G.TensorSpec(outs[0].name, "float32", ("batch", "seq", cfg.vocab_size))] + outs[1:]
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {}
        for name, module, o in [("all positions", AllPositions(dec), all_outs), ("last position", G.DecoderGraph(dec), outs)]:
            path = Path(tmp) / f"{name.split()[0]}.onnx"
            O.place(O.export_graph(module, feeds_t, ins, o), path, [], O.DataFile(Path(tmp) / f"{path.stem}.data"))
            sessions[name] = O.ort_session(path, threads=1)
        last = {k: s.run(["logits"], feeds)[0][0, -1] for k, s in sessions.items()}
        assert np.allclose(last["all positions"], last["last position"], atol=1e-5)
        times: dict[str, list[float]] = {k: [] for k in sessions}
        for _ in range(args.runs):
            for k, s in sessions.items():
                t = time.perf_counter()
                s.run(None, feeds)
                times[k].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    print(json.dumps({"hidden": args.hidden, "layers": args.layers, "vocab": args.vocab, "seq": args.seq,
                      "runs": args.runs, "median_ms": {k: round(v, 3) for k, v in med.items()},
                      "last_over_all": round(med["last position"] / med["all positions"], 3)}))


if __name__ == "__main__":
    main()
