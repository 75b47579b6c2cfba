"""The `--jobs` scheduler's plan: what each training step waits for, and which steps go first."""

from lynx_export.parallel import plan
from lynx_export.registry import create_variant


def test_every_step_waits_for_what_it_needs():
    steps = plan([create_variant(n) for n in ("lynx", "lynx-base", "lynx-large", "lynx-lowres", "lynx-blind")])
    assert steps[("features", 128)][0] == () and steps[("features", 64)][0] == ()
    for name in ("lynx", "lynx-base", "lynx-large", "lynx-blind"):  # the blind control reads the blank picture's features
        assert steps[("variant", name)][0] == (("features", 128),), name
    assert steps[("variant", "lynx-lowres")][0] == (("features", 64),)
    assert len(steps) == 7  # 2 feature stores, 5 variants


def test_the_feature_stores_and_the_large_backbone_go_first():
    steps = plan([create_variant(n) for n in ("lynx", "lynx-large", "lynx-gpt2")])
    first = sorted(steps, key=lambda k: steps[k][1])
    assert first[0] == ("features", 128)
    assert first[1] == ("variant", "lynx-large")
