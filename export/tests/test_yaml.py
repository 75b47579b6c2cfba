import yaml

from lynx_export import yaml_io


def test_writer_round_trips_through_pyyaml():
    doc = {"name": "lynx", "n": 3, "x": 0.5, "flag": True, "none": None, "tricky": "yes", "colon": "a: b",
           "newline": "User: {question}\nBot:", "hex": "0123abc", "list": [1, "two", None],
           "nested": {"a": {"b": [{"name": "t", "shape": ["batch", 3]}]}}, "empty": [], "e": {}}
    assert yaml.safe_load(yaml_io.dump(doc)) == doc
