"""Editing an ONNX graph in place: who produces and reads a tensor, constants, order and pruning.

The graph rewrites (gqa.py, fuse.py) replace traced subgraphs by ONNX Runtime's fused operators and
share these helpers. They work on the graph proto without loading external data: the weights stay
where they are.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """The node that writes each tensor."""
    return {o: n for n in graph.node for o in n.output}


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    """The nodes that read each tensor (graph outputs are not counted)."""
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for x in n.input:
            if x:
                out.setdefault(x, []).append(n)
    return out


def constant(graph: onnx.GraphProto, prod: dict[str, onnx.NodeProto], name: str) -> np.ndarray | None:
    """The value of `name` when it is an initializer without external data or a Constant node's
    output; None otherwise."""
    node = prod.get(name)
    if node is not None:
        if node.op_type != "Constant":
            return None
        for a in node.attribute:
            if a.name == "value":
                return numpy_helper.to_array(a.t)
            if a.name == "value_float":
                return np.array(a.f, np.float32)
            if a.name == "value_floats":
                return np.array(a.floats, np.float32)
            if a.name == "value_int":
                return np.array(a.i, np.int64)
            if a.name == "value_ints":
                return np.array(a.ints, np.int64)
        return None
    for t in graph.initializer:
        if t.name == name:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                return None
            return numpy_helper.to_array(t)
    return None


def initializer_shape(graph: onnx.GraphProto, name: str) -> tuple[int, ...] | None:
    """The dims of initializer `name` (inline or external), None when there is none."""
    for t in graph.initializer:
        if t.name == name:
            return tuple(t.dims)
    return None


def prune(g: onnx.GraphProto):
    """Drops nodes and initializers no graph output depends on."""
    index = {o: k for k, n in enumerate(g.node) for o in n.output}
    live: set[int] = set()
    stack = [o.name for o in g.output]
    while stack:
        k = index.get(stack.pop())
        if k is None or k in live:
            continue
        live.add(k)
        stack.extend(x for x in g.node[k].input if x)
    nodes = [copy(n) for k, n in enumerate(g.node) if k in live]
    used = {x for n in nodes for x in n.input}
    inits = [copy(t) for t in g.initializer if t.name in used]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(inits)


def copy(message):
    """A detached copy of a protobuf message (a node or tensor about to leave its repeated field)."""
    c = type(message)()
    c.CopyFrom(message)
    return c


def topological(nodes: list[onnx.NodeProto], g: onnx.GraphProto, what: str = "graph") -> list[onnx.NodeProto]:
    """`nodes` in an order where every input is written before it is read."""
    ready = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
    out, pending = [], list(nodes)
    while pending:
        rest = []
        for n in pending:
            if all(x in ready for x in n.input):
                out.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError(f"{what}: cannot order {len(rest)} nodes (e.g. `{rest[0].name}`)")
        pending = rest
    return out
