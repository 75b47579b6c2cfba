"""What the ecosystem's tools read from a zoo folder (issue 15, item 5): the other way round from
an import, every zoo variant's files load in Hugging Face's and ONNX's own tools.

- Beside every `tokenizer.json` the exporter writes: `tokenizer_config.json` and
  `special_tokens_map.json`, so that `transformers.AutoTokenizer.from_pretrained(FOLDER)` loads it
  with the manifest's special tokens, and a Jinja `chat_template` made from the manifest's prompt
  template, so that `apply_chat_template` renders the prompt the runtime builds (`<s>` + template).
- In every ONNX graph: `producer_name` / `producer_version` and `metadata_props` (`lynx.*` keys:
  producer, the variant or shared component, the graph's role, the roles of its inputs and
  outputs), which `onnx.load(..).metadata_props` and ONNX Runtime's `get_modelmeta()` read.

The build writes both (build.py, requantize.py, importers/hf.py); for a zoo built before,

    python -m lynx_export ecosystem --zoo ROOT

adds them without retraining: it stamps the metadata into each graph of the zoo's own variants
(the graph's content is untouched, so the numbers and the goldens stay what they were), writes the
tokenizer files and rewrites the manifests' checksums (docs/exporter.md, "Ecosystem files").
Imported variants are left as they are: their folders come from the ecosystem already.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import onnx

from . import __version__
from . import onnx_io as O
from .graphs import KV, NAMES

PRODUCER = "lynx-zoo exporter"
# Every metadata key this module writes starts with it; keys of others (the quantiser's) are kept.
PREFIX = "lynx."
TOKENIZER_FILES = ("tokenizer_config.json", "special_tokens_map.json")
ROLES = ("vision", "connector", "embed", "decoder")
# The first export revision (build.EXPORT_REVISION) whose files carry this module's metadata: a zoo
# stamped by `ecosystem` holds what that revision writes, and its manifests say so.
METADATA_REVISION = 4


# -- tokenizer files -----------------------------------------------------------------------------

def chat_template(template: str, add_bos: bool = True) -> str:
    """A Jinja chat template (transformers' `apply_chat_template`) that renders the manifest's
    prompt `template` (one `{question}`) around the user's message: `bos_token` first when the
    runtime adds BOS (`prompt.add_bos`), then the template's text with the message in place of
    `{question}`. The text after `{question}` is the assistant's cue ("\\nBot:"), so it ends each
    user turn and `add_generation_prompt` adds nothing; an assistant turn is " ANSWER" + EOS, as
    the zoo trains its targets (recipes.py). A message whose content is a list of parts (a
    processor's `[{"type": "image"}, {"type": "text", ...}]`) contributes its text parts: the
    picture's place is the runtime's (before BOS, or at the template's image placeholder).
    """
    if template.count("{question}") != 1:
        raise ValueError(f"prompt template {template!r}: needs exactly one `{{question}}`")
    before, after = template.split("{question}")
    lit = lambda s: "{{ " + json.dumps(s, ensure_ascii=False) + " }}" if s else ""  # noqa: E731 -- a Jinja string
    return (
        "{%- for message in messages -%}"
        + ("{%- if loop.first -%}{{ bos_token }}{%- endif -%}" if add_bos else "")
        + "{%- if message['role'] == 'user' -%}" + lit(before)
        + "{%- if message['content'] is string -%}{{ message['content'] }}"
        "{%- else -%}{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}{%- endfor -%}{%- endif -%}"
        + lit(after)
        + "{%- elif message['role'] == 'assistant' -%}{{ ' ' + message['content'] + eos_token }}"
        "{%- else -%}{{ raise_exception('the prompt template has a user turn and an assistant turn, not `' "
        "+ message['role'] + '`') }}"
        "{%- endif -%}{%- endfor -%}"
    )


def _unk(tokenizer_json: dict) -> str | None:
    """The tokenizer's unknown token: its model's `unk_token`, else an added special `<unk>`."""
    unk = (tokenizer_json.get("model") or {}).get("unk_token")
    if unk:
        return str(unk)
    added = {t.get("content"): t.get("special") for t in tokenizer_json.get("added_tokens", [])}
    return "<unk>" if added.get("<unk>") else None


def tokenizer_files(tokenizer: Path, tokens: dict, prompt: dict) -> dict[str, dict]:
    """{file name: JSON} of `tokenizer_config.json` and `special_tokens_map.json` for the
    `tokenizer.json` at `tokenizer`, from a manifest's `tokenizer` section (`bos`, `eos`, `pad`) and
    `prompt` section (`template`, `padding`, `add_bos`)."""
    special = {"bos_token": tokens["bos"], "eos_token": tokens["eos"], "pad_token": tokens["pad"]}
    unk = _unk(json.loads(tokenizer.read_text(encoding="utf-8")))
    if unk is not None:
        special["unk_token"] = unk
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",  # tokenizer.json is the whole tokenizer
        **special,
        # transformers knows left and right; `none` (a decoder that answers one question at a
        # time) is the runtime's, and the checkpoints themselves pad on the left; the zoo's ONNX
        # decoders (GroupQueryAttention, rows at the buffer's start) pad on the right
        "padding_side": "left" if prompt.get("padding", "left") == "none" else prompt.get("padding", "left"),
        "clean_up_tokenization_spaces": False,  # decode as the runtime does (tokenizers' decode)
        "chat_template": chat_template(prompt["template"], prompt.get("add_bos", True)),
    }
    return {"tokenizer_config.json": config, "special_tokens_map.json": special}


def _json_text(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_tokenizer_files(tokenizer: Path, tokens: dict, prompt: dict) -> list[Path]:
    """Writes the two files beside `tokenizer` (only when their text changes); returns the paths
    written."""
    written = []
    for name, doc in tokenizer_files(tokenizer, tokens, prompt).items():
        path = tokenizer.parent / name
        text = _json_text(doc)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


# -- graph metadata ------------------------------------------------------------------------------

@dataclass(frozen=True)
class GraphOwner:
    """Who a graph belongs to: the variant whose export wrote it, or the shared component several
    variants use (the frozen ViT at one resolution, `vit-128`; a frozen backbone's embedding,
    `llama-chat-small`), which names no variant since each manifest that uses it names it."""

    variant: str | None = None
    shared: str | None = None


def _pattern_re(pattern: str) -> re.Pattern:
    """`past_key_values.{i}.{kv}` -> a regex capturing the layer and key/value."""
    kv = "|".join(KV)
    body = re.escape(pattern).replace(re.escape("{i}"), r"(?P<i>\d+)").replace(re.escape("{kv}"), f"(?P<kv>{kv})")
    return re.compile(f"^{body}$")


def io_roles(names: list[str], patterns: dict[str, str] | None = None) -> dict:
    """The role of each tensor name, as a role -> name mapping: the fixed names of the contract's
    table by their role (`pixel_values`, `inputs_embeds`, `attention_mask`, ...), and the cache and
    cross-attention tensors as `past.key`, `past.value`, `present.key`, ... -> their names by layer
    (block) index. `patterns` overrides the table's `past` and `present` patterns (a manifest's
    `model.kv_cache`). A name of no role is an error."""
    table = {**NAMES, **(patterns or {})}
    fixed = {name: role for role, name in table.items() if "{" not in name}
    cache = {role: _pattern_re(p) for role, p in table.items() if "{" in p}
    out: dict = {}
    layered: dict[str, dict[int, str]] = {}
    for name in names:
        if name in fixed:
            out[fixed[name]] = name
            continue
        for role, rx in cache.items():
            m = rx.match(name)
            if m:
                layered.setdefault(f"{role}.{m['kv']}", {})[int(m["i"])] = name
                break
        else:
            raise ValueError(f"tensor `{name}` has no role in the contract's table (graphs.NAMES)")
    for key, by_index in layered.items():
        if sorted(by_index) != list(range(len(by_index))):
            raise ValueError(f"{key}: layers {sorted(by_index)} are not 0..{len(by_index) - 1}")
        out[key] = [by_index[i] for i in range(len(by_index))]
    return out


def graph_metadata(role: str, owner: GraphOwner, inputs: list[str], outputs: list[str],
                   patterns: dict[str, str] | None = None) -> dict[str, str]:
    """The `lynx.*` metadata_props of one graph (docs/contract.md section 2), in key order."""
    if role not in ROLES:
        raise ValueError(f"graph role `{role}`: expected one of {', '.join(ROLES)}")
    if (owner.variant is None) == (owner.shared is None):
        raise ValueError(f"a graph belongs to one variant or one shared component, not {owner}")
    compact = lambda d: json.dumps(d, separators=(",", ":"))  # noqa: E731
    meta = {
        "lynx.producer": f"{PRODUCER} {__version__}",
        "lynx.role": role,
        "lynx.inputs": compact(io_roles(inputs, patterns)),
        "lynx.outputs": compact(io_roles(outputs, patterns)),
    }
    if owner.variant is not None:
        meta["lynx.variant"] = owner.variant
    else:
        meta["lynx.shared"] = str(owner.shared)
    return dict(sorted(meta.items()))


def stamp(model: onnx.ModelProto, role: str, owner: GraphOwner, patterns: dict[str, str] | None = None) -> bool:
    """Sets `model`'s producer and its `lynx.*` metadata (others' keys kept, in their order, before
    ours); returns whether anything changed. The graph itself is not touched."""
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    meta = graph_metadata(role, owner, inputs, outputs, patterns)
    before = model.SerializeToString()
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for key, value in kept + list(meta.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name, model.producer_version = PRODUCER, __version__
    return model.SerializeToString() != before


def stamp_file(path: Path, role: str, owner: GraphOwner, patterns: dict[str, str] | None = None) -> bool:
    """Stamps the graph file at `path` in place (its external data untouched); returns whether it
    changed."""
    model = onnx.load(str(path), load_external_data=False)
    if not stamp(model, role, owner, patterns):
        return False
    path.write_bytes(model.SerializeToString())
    return True


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata_props of the graph at `path`."""
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


# -- an existing zoo -----------------------------------------------------------------------------

@dataclass
class Stamped:
    """What `ecosystem` did to a zoo."""

    graphs: list[Path]  # graph files whose metadata changed
    tokenizer_files: list[Path]  # tokenizer_config.json / special_tokens_map.json written
    manifests: list[Path]  # manifests whose checksums (or export revision) changed
    skipped: list[str]  # imported variants, left as they are

    def summary(self) -> str:
        return (f"{len(self.graphs)} graph(s) stamped, {len(self.tokenizer_files)} tokenizer file(s) written, "
                f"{len(self.manifests)} manifest(s) rewritten"
                + (f"; imported variants left as they are: {', '.join(self.skipped)}" if self.skipped else ""))


def owner_of(graph: str, variants: set[str]) -> GraphOwner:
    """The owner of the zoo's graph at the zoo-relative path `graph`, from the storage layout
    (onnx_io.py): `onnx/NAME.ROLE.onnx` is variant NAME's, another name (`vit-128.onnx`,
    `BACKBONE.embed.onnx`) a shared component's."""
    stem = Path(graph).name.removesuffix(".onnx")
    head = stem.rsplit(".", 1)[0] if "." in stem else stem
    return GraphOwner(variant=head) if head in variants else GraphOwner(shared=head)


def _kv_patterns(doc: dict) -> dict[str, str] | None:
    kv = (doc.get("model") or {}).get("kv_cache")
    if not kv or ("past" not in kv and "present" not in kv):
        return None  # the default names (a `kv_cache` may say only how the cache is updated)
    return {"past": kv.get("past", NAMES["past"]), "present": kv.get("present", NAMES["present"])}


def stamp_zoo(zoo: Path, log=print) -> Stamped:
    """Adds the ecosystem files to the zoo at `zoo` (module doc): returns what changed."""
    import yaml  # PyYAML: manifests by any writer (an importer's too); the build itself needs none

    manifests = sorted((zoo / "variants").glob("*.yaml"))
    docs = {p: yaml.safe_load(p.read_text()) for p in manifests}
    own = {p: d for p, d in docs.items() if (d.get("origin") or {"kind": "zoo"})["kind"] == "zoo"}
    skipped = sorted(d["name"] for p, d in docs.items() if p not in own)
    names = {d["name"] for d in own.values()}

    # Every graph once, with one role and owner however many manifests name it.
    graphs: dict[str, tuple[str, GraphOwner, dict | None]] = {}
    for path, d in own.items():
        for role, g in d["graphs"].items():
            seen = (role, owner_of(g["path"], names), _kv_patterns(d))
            if graphs.setdefault(g["path"], seen) != seen:
                raise ValueError(f"{path}: graph `{g['path']}` as `{role}` is named otherwise by another manifest "
                                 f"({graphs[g['path']]})")
    new_sha: dict[str, str] = {}
    stamped = []
    for rel, (role, owner, patterns) in sorted(graphs.items()):
        path = zoo / rel
        old = O.sha256_file(path)
        if stamp_file(path, role, owner, patterns):
            stamped.append(path)
            new_sha[old] = O.sha256_file(path)
            log(f"stamped {rel} ({role}, {owner.variant or owner.shared})")

    # The tokenizer files: one pair per tokenizer.json, the same for every manifest that names it.
    # A variant that never pads a batch (`padding: none`) has no say in `padding_side`: the side is
    # that of the variants that pad, which must agree.
    pairs: dict[str, tuple[dict, dict, str]] = {}
    for path, d in own.items():
        tok, prompt = d["tokenizer"], d["prompt"]
        rest = {k: v for k, v in prompt.items() if k != "padding"}
        key = json.dumps({"tokens": [tok["bos"], tok["eos"], tok["pad"]], "prompt": rest}, sort_keys=True)
        first = pairs.setdefault(tok["path"], ({k: tok[k] for k in ("bos", "eos", "pad")}, prompt, key))
        if first[2] != key:
            raise ValueError(f"{path}: `{tok['path']}` serves variants with other special tokens or prompts; one "
                             "tokenizer_config.json beside it cannot hold both (give each its own tokenizer folder)")
        had, side = first[1].get("padding", "left"), prompt.get("padding", "left")
        if had == "none":
            pairs[tok["path"]] = (first[0], prompt, key)
        elif side not in ("none", had):
            raise ValueError(f"{path}: `{tok['path']}` serves variants padded on the left and on the right; one "
                             "tokenizer_config.json beside it cannot hold both (give each its own tokenizer folder)")
    written = []
    for rel, (tokens, prompt, _) in sorted(pairs.items()):
        for p in write_tokenizer_files(zoo / rel, tokens, prompt):
            written.append(p)
            log(f"wrote {p.relative_to(zoo).as_posix()}")

    # The manifests: new checksums of the stamped graphs, and the export revision that has them.
    rewritten = []
    for path in own:
        text = path.read_text()
        new = text
        for old, sha in new_sha.items():
            new = new.replace(old, sha)
        new = re.sub(r"^(  export_revision: )(\d+)$",
                     lambda m: m[1] + str(max(int(m[2]), METADATA_REVISION)), new, count=1, flags=re.M)
        if new != text:
            path.write_text(new)
            rewritten.append(path)
    return Stamped(stamped, written, rewritten, skipped)
