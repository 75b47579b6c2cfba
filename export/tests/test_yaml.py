import yaml

from lynx_export import yaml_io


def test_writer_round_trips_through_pyyaml():
    doc = {"name": "lynx", "n": 3, "x": 0.5, "flag": True, "none": None, "tricky": "yes", "colon": "a: b",
           "newline": "User: {question}\nBot:", "hex": "0123abc", "list": [1, "two", None],
           "nested": {"a": {"b": [{"name": "t", "shape": ["batch", 3]}]}}, "empty": [], "e": {}}
    assert yaml.safe_load(yaml_io.dump(doc)) == doc


def test_floats_without_a_dot_stay_floats_in_pyyaml():
    # repr(2e-06) is "2e-06", which YAML 1.1 (PyYAML) reads as a string: an import's parity of
    # exactly 2.000e-06 once came back from its manifest as "2e-06"
    doc = {"parity": [2e-06, 1e-05, 1e16, -3e-300, 1.5e-07, 0.25]}
    text = yaml_io.dump(doc)
    assert yaml.safe_load(text) == doc == yaml_io.load(text)


def test_reader_reads_what_the_writer_writes_as_pyyaml_does():
    doc = {"name": "lynx", "n": 3, "x": 0.5, "neg": -2.0, "flag": False, "none": None, "tricky": "no",
           "colon": "a: b", "comma": "a, b", "brace": "{x}", "newline": "User: {question}\nBot:",
           "hex": "0123abc", "list": [1, "two", None, 2.5], "nested": {"a": {"b": [{"name": "t", "shape": ["batch", 3]}]}},
           "long": [{"path": "onnx/" + "x" * 120, "sha256": "9" * 64}], "empty": [], "e": {}}
    text = yaml_io.dump(doc)
    assert yaml_io.load(text) == doc == yaml.safe_load(text)


def test_reader_matches_pyyaml_on_the_shipped_manifests():
    from lynx_export.data import repo_root
    paths = sorted((repo_root() / "variants").glob("*.yaml"))
    for p in paths:
        text = p.read_text()
        assert yaml_io.load(text) == yaml.safe_load(text), p


def test_reader_refuses_what_it_does_not_know():
    import pytest
    for bad in ("a: [1, 2", "a: {b 1}", "a: 1\n   b: 2", "- x\ny: 1"):
        with pytest.raises(yaml_io.YamlError):
            yaml_io.load(bad)


def test_up_to_date_reads_the_manifest_fields_not_substrings(tmp_path):
    from lynx_export import onnx_io as O
    from lynx_export.build import EXPORT_REVISION, _up_to_date

    (tmp_path / "onnx").mkdir()
    for name in ("tokenizer.json", "g.json", "d.onnx"):
        (tmp_path / "onnx" / name).write_text(name)

    def entry(name):
        return {"path": f"onnx/{name}", "sha256": O.sha256_file(tmp_path / "onnx" / name)}

    def manifest(key, revision, note=None):
        doc = {"note": note, "tokenizer": entry("tokenizer.json"), "goldens": entry("g.json"),
               "graphs": {"decoder": {**entry("d.onnx"), "external_data": []}},
               "provenance": {"config_hash": key, "export_revision": revision}}
        path = tmp_path / "m.yaml"
        path.write_text(yaml_io.dump(doc))
        return path

    assert _up_to_date(manifest("0123456789ab", EXPORT_REVISION), "0123456789ab", tmp_path)
    assert _up_to_date(manifest("abc", EXPORT_REVISION), "abc", tmp_path)
    # the right words elsewhere in the text do not make a stale manifest current
    stale = manifest("other", EXPORT_REVISION, note=f"config_hash: abc\nexport_revision: {EXPORT_REVISION}\n")
    assert not _up_to_date(stale, "abc", tmp_path)
    assert not _up_to_date(manifest("abc", EXPORT_REVISION + 1), "abc", tmp_path)
    current = manifest("abc", EXPORT_REVISION)
    (tmp_path / "onnx" / "d.onnx").write_text("changed")  # a listed file no longer verifies
    assert not _up_to_date(current, "abc", tmp_path)


def test_lines_say_where_each_line_of_a_manifest_stands():
    text = "model:\n  layers: 2\ngraphs:\n  decoder:\n    sha256: \"ab\"\nprovenance:\n  export_revision: 5\n"
    got = [(x.section, x.key, x.indent, x.ended) for x in yaml_io.lines(text)]
    assert got == [("model", "", 0, ""), ("model", "layers", 2, ""), ("graphs", "", 0, "model"),
                   ("graphs", "decoder", 2, ""), ("graphs", "decoder", 4, ""), ("provenance", "", 0, "graphs"),
                   ("provenance", "export_revision", 2, ""), ("provenance", "export_revision", 0, "")]
    revised = [x.revision(7) for x in yaml_io.lines(text)]
    assert revised[6] == "  export_revision: 7" and revised.count(None) == 7
    # a revision above the one asked for is kept
    assert [x.revision(3) for x in yaml_io.lines(text)][6] == "  export_revision: 5"
