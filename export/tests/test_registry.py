"""The variant registry: every variant builds, names are unique, unknown keys are errors."""

import pytest

from lynx_export import config as C
from lynx_export.models.lynx import LynxModel
from lynx_export.foundation import PLANS
from lynx_export.profiles import PROFILES
from lynx_export.registry import create_variant, list_variants


def test_at_least_twenty_variants_and_a_baseline():
    names = list_variants()
    assert len(names) >= 20
    assert names[0] == "lynx"
    assert len(set(names)) == len(names)


def tiny_model(v):
    """`v` at the smoke foundation plan's sizes."""
    plan = PLANS["smoke"]
    return LynxModel(v, plan.vision, plan.decoder(f"{v.backbone.family.value}-{v.backbone.size}", 384))


@pytest.mark.parametrize("name", list_variants())
def test_every_variant_builds(name):
    v = create_variant(name)
    assert v.name == name
    model = tiny_model(v)
    trainable = model.apply_freeze()
    assert trainable, f"{name} trains nothing"
    if v.has_vision:
        assert model.vision is not None and model.connector is not None
    else:
        assert model.vision is None and model.connector is None


@pytest.mark.parametrize("name", [n for n in list_variants() if n != "lynx" and not create_variant(n).seed_of])
def test_every_variant_changes_exactly_one_named_axis(name):
    v = create_variant(name)
    assert v.changes, f"{name} names no axis"
    assert v.paper
    assert C.to_dict(v) != C.to_dict(create_variant("lynx"))


def test_unknown_key_is_an_error():
    with pytest.raises(C.ConfigError, match="unknown key `latent`"):
        C.from_dict(C.ConnectorConfig, {"latent": 8})
    with pytest.raises(C.ConfigError, match="unknown key"):
        create_variant("lynx", recipe={"alignmnet_steps": 0})


def test_unknown_enum_value_is_an_error():
    with pytest.raises(C.ConfigError, match="unknown value `xattn`"):
        C.from_dict(C.ConnectorConfig, {"kind": "xattn"})


def test_unknown_variant_suggests_a_close_name():
    with pytest.raises(KeyError, match="similar: `lynx-xattn`"):
        create_variant("lynx-xatn")


def test_round_trip_through_plain_data():
    v = create_variant("lynx-lora")
    assert C.from_dict(C.VariantConfig, C.to_dict(v)) == v


def test_inconsistent_variant_is_rejected():
    with pytest.raises(C.ConfigError, match="vision_input"):
        create_variant("lynx", vision_input="none")
    with pytest.raises(C.ConfigError, match="unknown value `false`"):
        create_variant("lynx", vision_input="false")
    with pytest.raises(C.ConfigError, match="adapters on a fully trained LLM"):
        create_variant("lynx", recipe={"llm": "trained"})


def test_the_blind_control_is_matched_to_lynx():
    """lynx-blind differs from lynx in what it is shown, nothing else: same connector, adapters,
    recipe (data mix, sampling, steps, learning rates) and trainable parameters."""
    lynx, blind = create_variant("lynx"), create_variant("lynx-blind")
    labels = {"name", "description", "changes", "paper"}
    differs = {k for k, v in C.to_dict(blind).items() if k not in labels and C.to_dict(lynx)[k] != v}
    assert differs == {"vision_input"} and blind.vision_input is C.VisionInput.BLANK

    def trainable(v):
        model = tiny_model(v)
        return sum(p.numel() for p in model.apply_freeze())
    assert trainable(blind) == trainable(lynx)


def test_config_hash_changes_with_any_field():
    a = create_variant("lynx")
    b = create_variant("lynx", recipe={"seed": 1})
    assert C.config_hash(a) != C.config_hash(b)
    assert C.config_hash(a) == C.config_hash(create_variant("lynx"))


def test_every_connector_kind_has_one_module_and_a_variant_reading_a_setting_its_kind_ignores_fails():
    from lynx_export import connectors
    assert set(connectors.KINDS) == set(C.ConnectorKind)
    with pytest.raises(C.ConfigError, match="no setting `latents`"):
        create_variant("lynx-projector", connector={"latents": 8})
    with pytest.raises(C.ConfigError, match="no setting `pool`"):
        create_variant("lynx", connector={"pool": 4})


def test_visual_tokens_follow_the_profile_patch():
    v = create_variant("lynx-projector")
    assert v.visual_tokens(16) == 16 and v.visual_tokens(8) == 64
    assert create_variant("lynx").visual_tokens(8) == 32


def test_a_variant_must_change_the_axis_it_declares():
    from lynx_export.variants import VARIANTS, Variant

    assert len({v.name for v in VARIANTS}) == len(VARIANTS)
    ok = Variant("x-lowres", changes="resolution", description="d", paper="p", overrides={"resolution": 64})
    assert ok.config().resolution == 64
    # overrides touching another axis than the declared one
    with pytest.raises(C.ConfigError, match="changes `resolution`"):
        Variant("x-bad", changes="resolution", description="d", paper="p", overrides={"adapter": {"every": 1}}).config()
    # an override that sets the baseline's own value changes nothing
    with pytest.raises(C.ConfigError, match="changes `frames`"):
        Variant("x-same", changes="frames", description="d", paper="p", overrides={"frames": 5}).config()
    # a nested axis, and an unknown one
    with pytest.raises(C.ConfigError, match="changes `adapter.every`"):
        Variant("x-kind", changes="adapter.every", description="d", paper="p", overrides={"adapter": {"dim": 16}}).config()
    with pytest.raises(C.ConfigError, match="not a manifest axis"):
        Variant("x-typo", changes="resolutoin", description="d", paper="p", overrides={"resolution": 64}).config()


def test_generation_defaults_are_what_the_shipped_manifests_recommend():
    import yaml

    from lynx_export.data import repo_root

    doc = yaml.safe_load((repo_root() / "variants" / "lynx.yaml").read_text())
    zoo = PROFILES["zoo"]
    assert doc["generation"] == zoo.generation.manifest(zoo.max_new_tokens)


def test_a_seed_replicate_is_its_variant_with_another_seed():
    from lynx_export.manifest import axes

    of = create_variant("lynx-xattn")
    rep = create_variant("lynx-xattn-seed2")
    assert (rep.name, rep.seed_of, rep.recipe.seed, rep.changes) == ("lynx-xattn-seed2", "lynx-xattn", 2, of.changes)
    assert axes(rep, 8) == axes(of, 8) and C.config_hash(rep) != C.config_hash(of)
    assert C.to_dict(C.replace(rep, name=of.name, description=of.description, seed_of=None,
                               recipe={"seed": 0})) == C.to_dict(of)  # nothing else differs
    with pytest.raises(KeyError, match="`lynx-seed1` is itself a replicate"):
        create_variant("lynx-seed1-seed2")
    with pytest.raises(KeyError, match="`lynx-int8` exports another variant's weights"):
        create_variant("lynx-int8-seed1")
    with pytest.raises(KeyError, match="no variant `lynx-seed0`"):  # seed 0 is lynx itself
        create_variant("lynx-seed0")
    with pytest.raises(KeyError, match="no variant `lynx-xatn-seed1`"):
        create_variant("lynx-xatn-seed1")
