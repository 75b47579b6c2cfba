"""The manifest contract as data: docs/manifest.schema.json is generated from the Rust runtime's
serde types (`lynx_zoo::manifest::json_schema`, kept current by a Rust test); every manifest the
exporter writes, and every shipped one, must validate against it. Here: every shipped manifest,
and the `axes` block (what varies with the variant) of every registered variant before any build.
The runtime's cross-field rules and bounds are checked by `lynx-zoo check` (the smoke path)."""

import json
from enum import Enum
from pathlib import Path

import jsonschema
import pytest
import yaml

from lynx_export.data import repo_root
from lynx_export.registry import create_variant, list_variants


def schema():
    return json.loads((repo_root() / "docs" / "manifest.schema.json").read_text())


def validate(doc):
    jsonschema.Draft202012Validator(schema()).validate(doc)


def shipped():
    return sorted((repo_root() / "variants").glob("*.yaml"))


@pytest.mark.parametrize("path", shipped(), ids=lambda p: p.stem)
def test_shipped_manifests_follow_the_schema(path: Path):
    validate(yaml.safe_load(path.read_text()))


def validate_axes(axes: dict):
    """`axes` against the schema's definition of the manifest's `axes` block."""
    doc = schema()
    jsonschema.Draft202012Validator({"$ref": doc["properties"]["axes"]["$ref"], "$defs": doc["$defs"]}).validate(axes)


@pytest.mark.parametrize("name", list_variants())
def test_the_axes_the_exporter_writes_for_every_variant_follow_the_schema(name: str):
    """What `manifest.axes` writes for each registered variant (every connector kind the zoo
    builds, at every ViT patch side a foundation plan uses), before any build."""
    from lynx_export.foundation import PLANS
    from lynx_export.manifest import axes

    for patch in sorted({plan.vision.patch for plan in PLANS.values()}):
        validate_axes(axes(create_variant(name), patch))


def test_the_axes_check_can_fail():
    from lynx_export.manifest import axes

    doc = axes(create_variant("lynx-projector"), 16)
    validate_axes(doc)
    for bad in ({**doc, "connector": {**doc["connector"], "kind": "qformer"}}, {**doc, "visual_tokens": -1},
                {**doc, "pooling": 2}):
        with pytest.raises(jsonschema.ValidationError):
            validate_axes(bad)


def test_the_schema_refuses_what_the_runtime_refuses():
    doc = yaml.safe_load((repo_root() / "variants" / "lynx.yaml").read_text())
    for bad in (
        {**doc, "colour": "blue"},  # unknown key
        {**doc, "axes": {**doc["axes"], "connector": {"kind": "qformer"}}},  # unknown enum value
        {k: v for k, v in doc.items() if k != "graphs"},  # missing section
        {**doc, "model": {**doc["model"], "layers": -1}},  # a count below zero
    ):
        with pytest.raises(jsonschema.ValidationError):
            validate(bad)
    validate(doc)


def test_every_axis_value_the_exporter_can_write_the_runtime_reads():
    """The axis enums exist on both sides (config.py, src/manifest/raw.rs); every value the exporter
    can write must be one the runtime accepts (the runtime may read more: `freeze.vision: trained`)."""
    from lynx_export import config as C

    defs = schema()["$defs"]
    pairs: dict[type[Enum], str] = {
        C.Family: "BackboneFamily", C.Flavour: "BackboneFlavour", C.ConnectorKind: "ConnectorKind",
        C.AdapterKind: "AdapterKind", C.VisionFreeze: "VisionFreeze", C.LlmFreeze: "LlmFreeze",
        C.CaptionQuality: "AlignmentData", C.Sampling: "TaskSampling", C.Prompts: "PromptRecipe",
        C.Quantization: "Quantization",
    }
    for enum, name in pairs.items():
        runtime = values(defs[name])
        exporter = {m.value for m in enum}
        assert exporter <= runtime, f"{enum.__name__}: {sorted(exporter - runtime)} not in the runtime's {name}"
    # and the one that is no enum in config.py
    assert {"greedy", "beam", "sample"} == values(defs["Strategy"])


def test_every_connector_kind_enters_the_decoder_where_the_runtime_expects_it():
    """The registry's placement of each kind (connectors/) is the runtime's family for it: the
    schema's `x-placement`, generated from `ConnectorKind::family` (src/manifest/raw.rs)."""
    from lynx_export import connectors

    runtime = {o["const"]: o["x-placement"] for o in schema()["$defs"]["ConnectorKind"]["oneOf"]}
    assert {k.value: s.placement.value for k, s in connectors.KINDS.items()} == \
        {k.value: runtime[k.value] for k in connectors.KINDS}


def values(definition: dict) -> set:
    """The strings a schema enum allows (`enum`, or `oneOf` of `const`/`enum` with their docs)."""
    if "enum" in definition:
        return set(definition["enum"])
    out = set()
    for option in definition["oneOf"]:
        out |= {option["const"]} if "const" in option else set(option["enum"])
    return out


def test_the_blank_picture_is_the_one_the_runtime_substitutes():
    """The exporter trains and writes goldens for `vision_input: blank` with media.blank_picture;
    the runtime substitutes the picture of the schema's `x-blank-rgb` (src/preprocess)."""
    from lynx_export.config import VisionInput
    from lynx_export.media import BLANK_RGB, blank_picture

    blank = next(o for o in schema()["$defs"]["VisionInput"]["oneOf"] if o.get("const") == "blank")
    assert tuple(blank["x-blank-rgb"]) == BLANK_RGB
    assert (blank_picture(8) == BLANK_RGB).all() and blank_picture(8).shape == (8, 8, 3)
    names = {o["const"] for o in schema()["$defs"]["VisionInput"]["oneOf"] if "const" in o}
    assert names == {v.value for v in VisionInput}
