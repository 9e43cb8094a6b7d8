"""The lowered network's file: ``save_network`` / ``load_network`` (one ``.npz``) and ``network_to_dict`` /
``network_from_dict`` (a JSON-able dict), for the records of :mod:`neurodeploy.lower.network`.

One ``.npz`` file; key ``__meta__`` holds a UTF-8 JSON document
(``format`` = ``neurodeploy.lowered``, ``version`` = 2, or 3 when some population has a nonzero
``v_init``, which a version-2 reader would silently drop, or 4 when a host encoder has a ``pool`` (a
max-pool after its conv), which an older reader would drop; the records with every scalar field) and every
array field is stored as its own npz entry ``<record kind>/<record name>/<field>`` referenced from the
JSON as ``{"array": key}``; integer arrays in the smallest integer type that holds them (read back as
int64).  A sparse field (``sparse`` weights and delays) is ``{"csr": {"shape": [n_out, n_in], "indptr":
{"array": ...}, "indices": {"array": ...}, "data": {"array": ...}}}`` (npz entries
``<field>.indptr/.indices/.data``): the file grows with the connections, never with n_out x n_in.
Version 1 (sparse groups stored dense) and versions newer than 4 are refused with a message naming both.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import fields

import numpy as np
import scipy.sparse as sp

from ..errors import BadInputError
from ..fileio import atomic_path
from .network import Attention, Encoder, LoweredNetwork, Population, Synapse, as_sparse

FORMAT = "neurodeploy.lowered"
VERSION = 4             # written only when a host encoder max-pools (3: a nonzero v_init; else VERSION_BASE)
VERSION_BASE = 2        # versions read: VERSION_BASE .. VERSION


def save_network(net: LoweredNetwork, path: str) -> None:
    """Write ``net`` to one ``.npz`` file (atomically)."""
    meta, arrays = _split(net)
    payload = {"__meta__": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}
    payload.update(arrays)
    with atomic_path(path) as tmp:
        _savez_fast(tmp, payload)


def load_network(path: str) -> LoweredNetwork:
    """The network in a file :func:`save_network` wrote; a bad file is a one-line :class:`BadInputError`."""
    try:
        z = np.load(path, allow_pickle=False)
        meta = json.loads(bytes(z["__meta__"]).decode("utf-8"))
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    except (OSError, ValueError, KeyError) as exc:
        raise BadInputError(f"{path}: not a lowered network file ({exc})") from exc
    return network_from_dict(_resolve(meta, arrays))


def network_to_dict(net: LoweredNetwork) -> dict:
    """A JSON-able dict; arrays become nested lists (use save_network for large networks)."""
    meta, arrays = _split(net)
    return _inline(meta, arrays)


def network_from_dict(d: dict) -> LoweredNetwork:
    """The network a :func:`network_to_dict` document (or a file's resolved JSON) describes."""
    if d.get("format") != FORMAT:
        raise BadInputError(f"not a lowered network (format '{d.get('format')}')")
    version = int(d.get("version", 0))
    if not VERSION_BASE <= version <= VERSION:
        why = ("newer than this neurodeploy reads" if version > VERSION else
               "written by an older neurodeploy (sparse groups stored dense); lower the model again")
        raise BadInputError(f"lowered network format version {version} is {why} (this version reads "
                            f"versions {VERSION_BASE} to {VERSION})")
    net = LoweredNetwork(outputs=list(d.get("outputs", [])), metadata=dict(d.get("metadata", {})))
    for rec in d.get("populations", []):
        net.populations.append(_make(Population, rec))
    for rec in d.get("synapses", []):
        net.synapses.append(_make(Synapse, rec))
    for rec in d.get("attention", []):
        net.attention.append(_make(Attention, rec))
    for rec in d.get("encoders", []):
        net.encoders.append(_make(Encoder, rec))
    return net


def _split(net: LoweredNetwork):
    arrays = {}

    def rec(kind, obj):
        out = {}
        for f in fields(obj):
            val = getattr(obj, f.name)
            if sp.issparse(val):
                key = f"{kind}/{obj.name}/{f.name}"
                m = as_sparse(val)
                out[f.name] = {"csr": {"shape": [int(a) for a in m.shape]}}
                for part in ("indptr", "indices", "data"):
                    arrays[f"{key}.{part}"] = _compact(getattr(m, part))
                    out[f.name]["csr"][part] = {"array": f"{key}.{part}"}
            elif isinstance(val, np.ndarray):
                key = f"{kind}/{obj.name}/{f.name}"
                arrays[key] = _compact(val)
                out[f.name] = {"array": key}
            elif isinstance(val, tuple):
                out[f.name] = list(val)
            elif isinstance(val, (np.integer,)):
                out[f.name] = int(val)
            elif isinstance(val, (np.floating,)):
                out[f.name] = float(val)
            else:
                out[f.name] = val
        return out

    # versions 3 and 4 only where they matter: an older reader would ignore v_init / an encoder's pool
    version = VERSION if any(e.pool for e in net.encoders) else \
        3 if any(np.any(np.asarray(p.v_init) != 0) for p in net.populations) else VERSION_BASE
    meta = {"format": FORMAT, "version": version, "outputs": list(net.outputs),
            "metadata": net.metadata,
            "populations": [rec("population", p) for p in net.populations],
            "synapses": [rec("synapse", s) for s in net.synapses],
            "attention": [rec("attention", a) for a in net.attention],
            "encoders": [rec("encoder", e) for e in net.encoders]}
    return meta, arrays


def _savez_fast(path, arrays: dict) -> None:
    """An ``.npz`` (``np.load`` reads it) deflated at level 1: by hand because ``np.savez_compressed`` has no
    compression level, and its default (6) took 136 s on imagenet-8-768's 226 MiB file (under load); level 1
    writes it in 9.3 s (262 MiB), and the lowered cifar10-4-384 network 1.8x faster for a file 2 % larger."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True) as zf:
        for name, a in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asanyarray(a), allow_pickle=False)


_TUPLES = {"shape", "stride", "padding", "dilation", "balance_delays", "input_shape", "src_view", "pool"}


def _compact(a: np.ndarray) -> np.ndarray:
    """Integer arrays in the smallest integer type holding them (files stay small; read back as int64)."""
    a = np.asarray(a)
    if a.dtype.kind not in "iu" or a.size == 0:
        return a
    lo, hi = int(a.min()), int(a.max())
    for t in (np.int8, np.int16, np.int32):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return a.astype(t)
    return a.astype(np.int64)


def _make(klass, rec: dict):
    names = {f.name for f in fields(klass)}
    kwargs = {}
    for k, v in rec.items():
        if k not in names:
            continue
        if isinstance(v, dict) and "csr" in v:
            c = v["csr"]
            v = as_sparse(sp.csr_matrix((np.asarray(c["data"], dtype=np.int64), np.asarray(c["indices"], dtype=np.int64),
                                         np.asarray(c["indptr"], dtype=np.int64)), shape=tuple(c["shape"])))
        elif k in _TUPLES:
            v = tuple(int(x) for x in v)
        elif klass is Encoder and k in ("weights", "row_gain", "bias"):
            v = np.asarray(v, dtype=np.float64)
        elif k in ("weights", "delays", "bias_mant", "v_init") and isinstance(v, (list, np.ndarray)):
            v = np.asarray(v)
            v = v.astype(np.int64) if v.dtype.kind in "iub" or isinstance(rec[k], list) else v
        kwargs[k] = v
    return klass(**kwargs)


def _inline(meta, arrays):
    if isinstance(meta, dict):
        if set(meta) == {"array"}:
            return np.asarray(arrays[meta["array"]]).tolist()
        return {k: _inline(v, arrays) for k, v in meta.items()}
    if isinstance(meta, list):
        return [_inline(v, arrays) for v in meta]
    return meta


def _resolve(meta, arrays):
    if isinstance(meta, dict):
        if set(meta) == {"array"}:
            return arrays[meta["array"]]
        return {k: _resolve(v, arrays) for k, v in meta.items()}
    if isinstance(meta, list):
        return [_resolve(v, arrays) for v in meta]
    return meta
