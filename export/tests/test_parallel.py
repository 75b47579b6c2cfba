"""The `--jobs` scheduler's plan: what each training step waits for, and which steps go first."""

from lynx_export.config import BackboneRef, Family, Flavour
from lynx_export.parallel import plan
from lynx_export.registry import create_variant


def test_every_step_waits_for_what_it_needs():
    steps = plan([create_variant(n) for n in ("lynx", "lynx-base", "lynx-large", "lynx-lowres", "lynx-blind")])
    chat = ("backbone", BackboneRef(Family.LLAMA, Flavour.CHAT, "small"))
    base = ("backbone", BackboneRef(Family.LLAMA, Flavour.BASE, "small"))
    large_chat = ("backbone", BackboneRef(Family.LLAMA, Flavour.CHAT, "large"))
    large_base = ("backbone", BackboneRef(Family.LLAMA, Flavour.BASE, "large"))
    assert steps[base][0] == () and steps[large_base][0] == ()
    assert steps[chat][0] == (base,) and steps[large_chat][0] == (large_base,)
    assert steps[("vit", None)][0] == ()
    assert steps[("features", 128)][0] == (("vit", None),)
    assert set(steps[("variant", "lynx")][0]) == {chat, ("features", 128)}
    assert set(steps[("variant", "lynx-base")][0]) == {base, ("features", 128)}
    assert set(steps[("variant", "lynx-lowres")][0]) == {chat, ("features", 64)}
    assert steps[("variant", "lynx-blind")][0] == (chat,)  # the blind control needs no vision at all
    assert len(steps) == 12  # 4 backbones, the ViT, 2 feature stores, 5 variants


def test_the_large_backbone_chain_and_the_vit_go_first():
    steps = plan([create_variant(n) for n in ("lynx", "lynx-large", "lynx-gpt2")])
    first = sorted(steps, key=lambda k: steps[k][1])
    assert first[0] == ("backbone", BackboneRef(Family.LLAMA, Flavour.BASE, "large"))
    assert first[1] == ("vit", None)  # every vision variant waits for it
    assert first.index(("variant", "lynx-large")) < first.index(("variant", "lynx"))


def test_a_vision_free_build_trains_no_vit():
    steps = plan([create_variant("lynx-blind")])
    assert {k[0] for k in steps} == {"backbone", "variant"}
