"""Structure helpers for ``nir.NIRGraph``: predecessors in edge order, a topological order that
tolerates cycles (back edges), metadata access.

Never rely on ``graph.nodes`` order: ``nir.read`` returns nodes sorted by name.  Edge order is kept by
``nir.write``/``nir.read``, and fan-in sums are taken in edge order, so results are deterministic.
"""
from __future__ import annotations


import nir
import numpy as np

from .. import limits
from ..errors import BadInputError, ResourceLimitError

DT_DEFAULT = 1e-4
FORMAT_VERSION = 1


def predecessors(graph: nir.NIRGraph) -> dict[str, list[str]]:
    """Node name -> the sources of its incoming edges, in edge order (fan-in sums in this order)."""
    pred: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        pred.setdefault(dst, []).append(src)
    return pred


def successors(graph: nir.NIRGraph) -> dict[str, list[str]]:
    succ: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for src, dst in graph.edges:
        succ.setdefault(src, []).append(dst)
    return succ


def _check_edges(graph: nir.NIRGraph) -> None:
    for src, dst in graph.edges:
        for end in (src, dst):
            if end not in graph.nodes:
                raise BadInputError(f"edge ({src!r}, {dst!r}) names a node {end!r} that the graph does not have")


def order_and_back_edges(graph: nir.NIRGraph) -> tuple[list[str], set[tuple[str, str]]]:
    """A topological order of the nodes and the set of back edges that close cycles.

    Kahn's algorithm, stable (ties broken by first appearance in the edge list, inputs first).  When
    every remaining node waits on a predecessor (a cycle), the first node that waits only on neurons (else
    the first waiting node that already has a scheduled predecessor) is taken and its unscheduled incoming
    edges become back edges: they carry the previous time step's value in the simulator, so a recurrent
    loop neuron -> Affine -> neuron applies the Affine (bias included) to the previous step's spikes."""
    _check_edges(graph)
    rank: dict[str, int] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Input):
            rank.setdefault(name, len(rank))
    for src, dst in graph.edges:
        rank.setdefault(src, len(rank))
        rank.setdefault(dst, len(rank))
    for name in graph.nodes:
        rank.setdefault(name, len(rank))
    pred = predecessors(graph)
    waiting = {n: set(pred[n]) for n in graph.nodes}
    succ = successors(graph)
    done: set[str] = set()
    order: list[str] = []
    back: set[tuple[str, str]] = set()
    comp = None
    ready = sorted((n for n in graph.nodes if not waiting[n]), key=rank.__getitem__)
    while len(order) < len(graph.nodes):
        if not ready:
            remaining = [n for n in graph.nodes if n not in done]
            # break the cycle at a neuron's output: a node that waits only on stateful nodes goes first, so
            # the loop's linear nodes apply this step to the neuron's previous-step output (a recurrent bias
            # then acts from t = 0, as in snnTorch's RLeaky/RSynaptic and on Loihi, where bias is per step)
            # only a node of a cycle whose unscheduled inputs all lie on that cycle (the most upstream cycle):
            # a feed-forward edge out of a loop never becomes a back edge, whatever the edge order
            if comp is None:
                comp = _cycle_components(graph)
            on_cycle = [n for n in remaining if n in comp and all(comp.get(p) == comp[n] for p in waiting[n])]
            candidates = [n for n in on_cycle if waiting[n] and all(_stateful(graph.nodes[p]) for p in waiting[n])]
            candidates = candidates or on_cycle or \
                [n for n in remaining if waiting[n] & done or set(pred[n]) & done] or remaining
            pick = min(candidates, key=rank.__getitem__)
            for p in waiting[pick]:
                back.add((p, pick))
            waiting[pick] = set()
            ready = [pick]
        node = ready.pop(0)
        if node in done:
            continue
        done.add(node)
        order.append(node)
        new = []
        for s in succ[node]:
            waiting[s].discard(node)
            if not waiting[s] and s not in done and s not in ready:
                new.append(s)
        ready = sorted(ready + new, key=rank.__getitem__)
    return order, back


def _cycle_components(graph: nir.NIRGraph) -> dict[str, int]:
    """Node -> its strongly connected component, for nodes on a cycle only (components of two or more
    nodes, or a self-loop).  scipy's csgraph does the search (one pass over the edges)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    names = list(graph.nodes)
    idx = {n: i for i, n in enumerate(names)}
    rows = [idx[a] for a, _ in graph.edges]
    cols = [idx[b] for _, b in graph.edges]
    m = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(m, directed=True, connection="strong")
    size = np.bincount(labels, minlength=len(names))
    selfloop = {a for a, b in graph.edges if a == b}
    return {n: int(labels[i]) for i, n in enumerate(names) if size[labels[i]] > 1 or n in selfloop}


_STATEFUL = ("LIF", "IF", "LI", "I", "CubaLIF", "CubaLI", "Delay", "NIRGraph")


def _stateful(node) -> bool:
    """A node whose output at step t does not depend on its input at step t only (a neuron, a delay)."""
    return type(node).__name__ in _STATEFUL


def topological_order(graph: nir.NIRGraph) -> list[str]:
    """Node names so that every node comes after its predecessors (back edges of cycles excepted)."""
    return order_and_back_edges(graph)[0]


def input_names(graph: nir.NIRGraph) -> list[str]:
    return [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]


def output_names(graph: nir.NIRGraph) -> list[str]:
    return [n for n, node in graph.nodes.items() if isinstance(node, nir.Output)]


def node_shape(node: nir.NIRNode, port: str = "output") -> tuple[int, ...] | None:
    types = node.output_type if port == "output" else node.input_type
    if not types:
        return None
    value = next(iter(types.values()))
    if value is None:
        return None
    return tuple(int(v) for v in np.asarray(value).reshape(-1))


def meta(obj, key: str, default=None):
    """A metadata value as a plain Python object (``nir.read`` returns numpy scalars and bytes)."""
    value = (getattr(obj, "metadata", None) or {}).get(key, default)
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def graph_dt(graph: nir.NIRGraph) -> float:
    return float(meta(graph, "neurodeploy.dt", DT_DEFAULT))


# -- extension nodes (docs/nir.md): one nir.NIRGraph whose namespaced metadata carries the operation -----------

def extension_node(extension: str, version: int, fields: dict, semantics: str, source: str | None, in_shape,
                   body: dict, out_shape) -> nir.NIRGraph:
    """The subgraph ``input -> body nodes (in order) -> output`` of extension ``extension`` (metadata
    ``neurodeploy.extension``, ``_version``, every field as ``neurodeploy.<field>``, ``semantics`` and, when
    given, ``source``).  The body is a NaN placeholder: a tool that ignores the metadata computes NaN."""
    md = {"neurodeploy.extension": extension, "neurodeploy.extension_version": version,
          **{f"neurodeploy.{k}": v for k, v in fields.items()}, "neurodeploy.semantics": semantics}
    if source:
        md["neurodeploy.source"] = source
    names = ["input", *body, "output"]
    return nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array(in_shape)}), **body,
                               "output": nir.Output(output_type={"output": np.array(out_shape)})},
                        edges=list(zip(names, names[1:])), metadata=md)


def extension_source(node, extension: str, version: int) -> str | None:
    """``None`` when ``node`` is not an ``extension`` node; else where it comes from (its source module, for
    messages).  BadInputError for a version this reader does not know."""
    if not isinstance(node, nir.NIRGraph) or meta(node, "neurodeploy.extension") != extension:
        return None
    where = meta(node, "neurodeploy.source", f"{extension} node")
    found = meta(node, "neurodeploy.extension_version")
    if found != version:
        raise BadInputError(f"{where}: {extension} extension version {found!r}, this reader knows {version}")
    return where


# -- validation (once, at the boundary: a file read, a graph handed to the API) ------------------------------

#: node types that hold state from one time step to the next: a cycle through one of them is a recurrence,
#: a cycle without one is an algebraic loop (no order of evaluation exists)
STATEFUL_TYPES = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.CubaLI, nir.I, nir.Delay)
_TAU_FIELDS = ("tau", "tau_mem", "tau_syn")
_METADATA_CHOICES = {
    "neurodeploy.input_domain": ("real", "counts", "binary"),
    "neurodeploy.input_encoding": ("events", "direct"),
    "neurodeploy.readout_reduction": ("mean_over_time",),
}


def _extension(node) -> bool:
    """A neurodeploy extension subgraph (spiking attention): an opaque node with a NaN placeholder body,
    read by its own reader (graph/attention.py), which holds state (its attention LIF)."""
    return isinstance(node, nir.NIRGraph) and meta(node, "neurodeploy.extension") is not None


def _stateful(node) -> bool:
    if _extension(node):
        return True
    if isinstance(node, nir.NIRGraph):
        return any(_stateful(n) for n in node.nodes.values())
    return isinstance(node, STATEFUL_TYPES)


def _cycles_without_state(graph: nir.NIRGraph) -> list[str] | None:
    """The nodes of one cycle that passes through no stateful node (an algebraic loop, or a self-loop on a
    non-neuron), else None.  Tarjan's strongly connected components, iterative (no recursion limit)."""
    succ = successors(graph)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    counter = 0
    for root in graph.nodes:
        if root in index:
            continue
        work = [(root, iter(succ.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ.get(w, ()))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                cyclic = len(comp) > 1 or v in succ.get(v, ())
                if cyclic and not any(_stateful(graph.nodes[n]) for n in comp):
                    return sorted(comp)
    return None


def _check_array(where: str, key: str, value) -> None:
    a = np.asarray(value)
    if a.dtype.kind == "c":
        raise BadInputError(f"{where}: '{key}' holds complex values; weights and parameters must be real")
    if a.dtype.kind not in "biuf":
        if a.dtype.kind in "OSU" and a.dtype.kind != "O":
            return
        raise BadInputError(f"{where}: '{key}' has dtype {a.dtype}; expected numbers")
    if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
        raise BadInputError(f"{where}: '{key}' contains NaN or infinity")


#: integer fields that fix a node's shapes, and their ranges: (lowest, highest, a string allowed).  A stride
#: or kernel of 0 divides by zero in the output-size formula; a huge or non-finite value overflows it
STRUCTURE_FIELDS = {
    "Conv1d": {"stride": (1, limits.MAX_DIM), "dilation": (1, limits.MAX_DIM), "groups": (1, limits.MAX_DIM),
               "padding": (0, limits.MAX_DIM, ("same", "valid")), "input_shape": (1, limits.MAX_DIM)},
    "Conv2d": {"stride": (1, limits.MAX_DIM), "dilation": (1, limits.MAX_DIM), "groups": (1, limits.MAX_DIM),
               "padding": (0, limits.MAX_DIM, ("same", "valid")), "input_shape": (1, limits.MAX_DIM)},
    "SumPool2d": {"kernel_size": (1, limits.MAX_DIM), "stride": (1, limits.MAX_DIM), "padding": (0, limits.MAX_DIM)},
    "AvgPool2d": {"kernel_size": (1, limits.MAX_DIM), "stride": (1, limits.MAX_DIM), "padding": (0, limits.MAX_DIM)},
    "Flatten": {"start_dim": (-limits.MAX_NDIM, limits.MAX_NDIM), "end_dim": (-limits.MAX_NDIM, limits.MAX_NDIM)},
}


def _as_text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "SUO" and value.size == 1:
        return _as_text(value.reshape(-1)[0])
    return value if isinstance(value, str) else None


def check_structure_fields(kind: str, fields: dict, where: str) -> None:
    """The shape-fixing fields of one node (``STRUCTURE_FIELDS[kind]``: stride, dilation, padding, groups,
    kernel size, input shape, flatten dims) as given, before any shape is computed from them: finite
    integers in range; for a conv with an input shape, a kernel (``fields['weight']``: the weight's shape)
    that fits the padded input.  Raises BadInputError naming ``where`` (the node) and the field."""
    ints = {}
    for key, rule in STRUCTURE_FIELDS.get(kind, {}).items():
        value = fields.get(key)
        if value is None:
            continue
        lo, hi = rule[0], rule[1]
        text = _as_text(value)
        if text is not None:
            if len(rule) > 2 and text in rule[2]:
                continue
            raise BadInputError(f"{where}: '{key}' = {text[:40]!r} is not a number"
                                + (f" or one of {', '.join(rule[2])}" if len(rule) > 2 else ""))
        a = np.asarray(value)
        if a.dtype.kind not in "biuf" or a.ndim > 1 or a.size > limits.MAX_NDIM or (a.size == 0 and key != "input_shape"):
            raise BadInputError(f"{where}: '{key}' must be an integer or a list of at most {limits.MAX_NDIM} "
                                f"integers, got {a.dtype} {list(a.shape)}")
        vals = [float(v) for v in a.reshape(-1)]
        if not all(np.isfinite(v) and v == int(v) and lo <= v <= hi for v in vals):
            shown = str(a.reshape(-1).tolist())
            raise BadInputError(f"{where}: '{key}' must be integers in [{lo:,}, {hi:,}], got {shown[:80]}")
        ints[key] = [int(v) for v in vals]
    weight = fields.get("weight")
    if weight is not None and kind in ("Conv1d", "Conv2d"):
        kernel = list(weight)[2:]
        if len(weight) < 3 or min(weight) < 1:
            raise BadInputError(f"{where}: 'weight' has shape {list(weight)}; a conv weight is [out, in/groups, "
                                f"kernel...] with every size >= 1")
        shape = ints.get("input_shape")
        if shape and "padding" in ints:  # padding 'same'/'valid' is not in ints: nothing to compute
            def at(key, i, default):
                v = ints.get(key, [default])
                return v[i] if len(v) > i else v[0]

            for i in range(min(len(shape), len(kernel))):
                span = at("dilation", i, 1) * (kernel[i] - 1) + 1
                if shape[i] + 2 * at("padding", i, 0) < span:
                    raise BadInputError(
                        f"{where}: kernel {kernel[i]} (dilation {at('dilation', i, 1)}) does not fit 'input_shape' "
                        f"{shape[i]} with 'padding' {at('padding', i, 0)} (axis {i})")


def _check_node(path: str, node, file: str = "") -> None:
    where = f"{file}node {path!r}"
    for key, value in vars(node).items():
        if key in ("metadata", "input_type", "output_type") or value is None or isinstance(value, (str, bytes)):
            continue
        if isinstance(value, (np.ndarray, list, tuple, int, float, np.generic)) and not isinstance(value, bool):
            _check_array(where, key, value)
    for key in _TAU_FIELDS:
        v = getattr(node, key, None)
        if v is not None and np.asarray(v).size and not (np.asarray(v, dtype=np.float64) > 0).all():
            raise BadInputError(f"{where}: '{key}' must be > 0")
    kind = type(node).__name__
    if kind in STRUCTURE_FIELDS:
        fields = {k: getattr(node, k, None) for k in STRUCTURE_FIELDS[kind]}
        if kind in ("Conv1d", "Conv2d"):
            fields["weight"] = np.shape(node.weight)
        check_structure_fields(kind, fields, where)
    md = getattr(node, "metadata", None) or {}
    th = md.get("neurodeploy.v_threshold")
    vth = getattr(node, "v_threshold", None)
    if th is not None and vth is not None:
        th_v = float(np.asarray(th).reshape(-1)[0])
        if not np.isfinite(th_v) or not np.allclose(np.asarray(vth, dtype=np.float64), th_v, rtol=1e-6, atol=0):
            raise BadInputError(f"{where}: 'v_threshold' array disagrees with its metadata "
                                f"neurodeploy.v_threshold = {th_v:g} (edit both or neither)")
    for shape_key in ("input_type", "output_type"):
        for port, shape in (getattr(node, shape_key, None) or {}).items():
            if shape is None:
                continue
            s = np.asarray(shape).reshape(-1)
            if s.size > limits.MAX_NDIM or (s.size and ((s < 0).any() or (s > limits.MAX_DIM).any())):
                raise ResourceLimitError(f"{where}: {shape_key}[{port!r}] = {s.tolist()} is outside the limits "
                                         f"(rank <= {limits.MAX_NDIM}, dims in [0, {limits.MAX_DIM}])")


def validate_graph(graph: nir.NIRGraph, where: str = "", _prefix: str = "", _depth: int = 0) -> nir.NIRGraph:
    """Check a graph once, at the boundary: node count and nesting, edges to existing nodes, cycles
    without a stateful node (algebraic loops, self-loops on non-neurons), real finite parameters, tau > 0,
    conv groups/stride >= 1, shapes within the limits, metadata (dt > 0, time steps capped, known
    markers).  Raises BadInputError / ResourceLimitError naming the file (``where``) and the node."""
    if not isinstance(graph, nir.NIRGraph):
        raise BadInputError(f"{where}expected a NIR graph, got {type(graph).__name__}")
    if _depth > limits.MAX_NESTING:
        raise ResourceLimitError(f"{where}subgraphs nested deeper than {limits.MAX_NESTING}")
    if not graph.nodes:
        raise BadInputError(f"{where}{'subgraph ' + repr(_prefix[:-1]) if _prefix else 'graph'} has no nodes")
    if len(graph.nodes) > limits.MAX_NODES:
        raise ResourceLimitError(f"{where}{len(graph.nodes):,} nodes (limit {limits.MAX_NODES:,})")
    for edge in graph.edges:
        if len(edge) != 2:
            raise BadInputError(f"{where}edge {edge!r} is not a (source, target) pair")
        src, dst = edge
        for end in (src, dst):
            if end not in graph.nodes and str(end).split(".")[0] not in graph.nodes:
                raise BadInputError(f"{where}edge ({_prefix}{src!s}, {_prefix}{dst!s}) names a node "
                                    f"{_prefix}{end!s} that the graph does not have")
    loop = _cycles_without_state(graph)
    if loop:
        what = f"self-loop on {_prefix}{loop[0]}" if len(loop) == 1 else \
            "algebraic loop through " + ", ".join(_prefix + n for n in loop[:5]) + (" ..." if len(loop) > 5 else "")
        raise BadInputError(f"{where}{what}: a cycle must pass through a neuron (a node with state)")
    for name, node in graph.nodes.items():
        if _extension(node):
            continue
        if isinstance(node, nir.NIRGraph):
            validate_graph(node, where, f"{_prefix}{name}.", _depth + 1)
        else:
            _check_node(f"{_prefix}{name}", node, where)
    if not _prefix:
        _check_metadata(graph, where)
    return graph


def _check_metadata(graph: nir.NIRGraph, where: str) -> None:
    md = graph.metadata or {}
    if "neurodeploy.dt" in md:
        try:
            dt = float(meta(graph, "neurodeploy.dt"))
        except (TypeError, ValueError):
            raise BadInputError(f"{where}metadata neurodeploy.dt must be a number") from None
        if not (np.isfinite(dt) and dt > 0):
            raise BadInputError(f"{where}metadata neurodeploy.dt must be > 0 and finite, got {dt!r}")
    if "neurodeploy.time_steps" in md:
        T = meta(graph, "neurodeploy.time_steps")
        if isinstance(T, bool) or not isinstance(T, (int, float)) or T != int(T) or T < 0:
            raise BadInputError(f"{where}metadata neurodeploy.time_steps must be an integer >= 0, got {T!r}")
        if T > limits.MAX_TIME_STEPS:
            raise ResourceLimitError(f"{where}metadata neurodeploy.time_steps = {int(T):,} exceeds the limit "
                                     f"{limits.MAX_TIME_STEPS:,}")
    for key, choices in _METADATA_CHOICES.items():
        v = meta(graph, key)
        if v is not None and v not in choices:
            raise BadInputError(f"{where}metadata {key} = {v!r}: expected one of {', '.join(choices)}")
