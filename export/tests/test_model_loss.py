"""LynxModel.loss's token weights and the resampler's extra context: the options a probe uses
leave the plain loss and the plain resampler as they were."""

import torch

from lynx_export.models.lynx import IGNORE
from lynx_export.registry import create_variant

from test_registry import tiny_model


def batch(model, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    cfg, vcfg = model.decoder.cfg, model.vision.cfg
    ids = torch.randint(4, cfg.vocab_size, (2, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # a right-padded row
    labels = ids.clone()
    labels[:, :4] = IGNORE  # the prompt
    labels[mask == 0] = IGNORE
    feats = torch.randn(2, 1, vcfg.grid ** 2, vcfg.width, generator=g)  # one frame of cached ViT features
    return ids, mask, labels, feats


def test_token_weights_of_one_give_the_plain_loss_and_other_weights_move_it():
    torch.manual_seed(0)
    model = tiny_model(create_variant("lynx")).eval()
    ids, mask, labels, feats = batch(model)
    with torch.no_grad():
        plain = model.loss(ids, mask, labels, feats)
        ones = model.loss(ids, mask, labels, feats, token_weights=torch.ones(ids.shape))
        w = torch.ones(ids.shape)
        w[:, 6:] = 4.0
        weighted = model.loss(ids, mask, labels, feats, token_weights=w)
        # by hand: the per-token losses of the prefix model, weighted over the labelled positions
        embeds = torch.cat([model.connector(model.vision_features(feats)), model.decoder.embed(ids)], dim=1)
        v = embeds.shape[1] - ids.shape[1]
        full_mask = torch.cat([mask.new_ones(2, v), mask], dim=1)
        logits, _ = model.decoder(embeds, full_mask, (full_mask.cumsum(-1) - 1).clamp(min=0), None, None)
        ce = torch.nn.functional.cross_entropy(logits[:, v:-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                               ignore_index=IGNORE, reduction="none")
        ww = w[:, 1:].reshape(-1) * (labels[:, 1:].reshape(-1) != IGNORE)
        want = (ce * ww).sum() / ww.sum()
    assert torch.allclose(plain, ones, atol=1e-6), (plain, ones)
    assert torch.allclose(weighted, want, atol=1e-5), (weighted, want)
    assert abs(float(weighted - plain)) > 1e-4


def test_the_resampler_without_context_is_unchanged_and_context_reaches_the_latents():
    torch.manual_seed(0)
    model = tiny_model(create_variant("lynx")).eval()
    _, _, _, feats = batch(model)
    r = model.connector
    with torch.no_grad():
        plain = r(feats)
        # the forward as it was before `context` existed, written out
        b, f, p, _ = feats.shape
        media = r.in_proj(feats)
        if r.frame_pos is not None:
            media = r.frame_pos(media)
        media = media.reshape(b, f * p, media.shape[-1])
        latents = r.latents.unsqueeze(0).expand(b, -1, -1)
        for layer in r.layers:
            latents = layer(latents, media)
        former = r.out_proj(r.norm(latents))
        width = r.in_proj.out_features
        with_context = r(feats, context=torch.randn(2, 3, width))
    assert torch.equal(plain, former)
    assert with_context.shape == plain.shape and not torch.allclose(with_context, plain)
