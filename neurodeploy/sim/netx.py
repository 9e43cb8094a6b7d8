"""Read lava-dl netx ``.net`` (HDF5) files into a :class:`LoweredNetwork`.

Supported layers: ``input``, ``conv``, ``flatten``, ``dense`` (with per-output / per-input / per-synapse
delays); neurons ``CUBA`` and ``LOIHI`` (as netx maps them: du = iDecay - 1, dv = vDecay,
vth = vThMant, bias_exp = 6, the file's bias as bias mantissa).  A dense layer without a neuron is
netx's non-leaky integrator (iDecay 0, vDecay 4096, vThMant ``1 << 17``).  Dense weights go through the
same weight-bit optimisation netx applies (left shift by the scale bits, num_weight_bits,
weight_exp = -scale bits), so the integers equal what Lava computes.  Layers are named ``layer<i>``
after their index in the file; a conv/dense layer's synapse group is ``layer<i>.syn``.

The input layer (when it has a neuron) is a LIF population; its data either go into its bias mantissa
(``input_mode="bias"``: an image held for every step, as lava-dl's pilotnet and tinynet ground truths do;
the input population is ``input``, of kind ``bias``, shape (C, H, W) in C order) or straight into its
``a_in`` each step (``input_mode="a_in"``).  Without an input neuron the first synapse layer reads the
input spikes.
"""
from __future__ import annotations

import numpy as np

from ..errors import BadInputError, UnsupportedError
from ..lower.network import LoweredNetwork, Population, Synapse

_INTEGRATOR = {"type": b"CUBA", "iDecay": 0, "vDecay": 4096, "vThMant": 1 << 17}


def netx_weight_bits(weight: np.ndarray):
    """netx's weight optimisation for dense layers: (weights, num_weight_bits, weight_exp)."""
    w = np.asarray(weight, dtype=np.float64)
    mx, mn = w.max(), w.min()
    if (mx > 254 and mn < 0) or (mn < -256 and mx > 0):
        w = np.clip(w, -256, 254)
        mx, mn = w.max(), w.min()
    if mx < 0:
        signed, scale = 0, -256 / mn
    elif mn >= 0:
        signed = 0
        scale = 255 / mx if mx > 0 else np.inf
    else:
        signed, scale = 1, min(127 / mx, -128 / mn)
    if not np.isfinite(scale):
        return w.astype(np.int64), 8, 0
    scale_bits = int(np.floor(np.log2(scale))) + signed
    n = 8
    while n > 0 and np.abs(w / 2 ** n - np.round(w / 2 ** n)).sum() != 0:
        n -= 1
    n -= signed
    nwb = 8 - scale_bits - n
    return (w.astype(np.int64) << scale_bits) if scale_bits >= 0 else (w.astype(np.int64) >> -scale_bits), \
        int(nwb), int(-scale_bits)


def _scalar(x):
    x = np.asarray(x)
    return x.reshape(-1)[0].item() if x.size else None


def _neuron_params(cfg, where: str) -> dict:
    ntype = _scalar(cfg["type"])
    ntype = ntype.decode() if isinstance(ntype, bytes) else str(ntype)
    if ntype not in ("CUBA", "LOIHI"):
        raise UnsupportedError(f"{where}: neuron type '{ntype}' is not supported (CUBA, LOIHI only)")
    return dict(du=int(_scalar(cfg["iDecay"])) - 1, dv=int(_scalar(cfg["vDecay"])),
                vth=int(_scalar(cfg["vThMant"])), bias_exp=6)


def _read_neuron(group):
    if "neuron" not in group:
        return None
    g = group["neuron"]
    return {k: g[k][()] for k in g.keys()}


def read_netx(path: str, num_layers: int | None = None, input_mode: str = "bias",
              reset_interval: int | None = None, reset_offset: int = 0,
              input_shape: tuple | None = None) -> LoweredNetwork:
    """The netx network in ``path`` as a lowered network (see the module docstring)."""
    import h5py

    try:
        h = h5py.File(path, "r")
    except OSError as exc:
        raise BadInputError(f"{path}: not a readable netx HDF5 file ({exc})") from exc
    with h:
        if "layer" not in h:
            raise BadInputError(f"{path}: no 'layer' group (not a netx file)")
        layers = h["layer"]
        n = len(layers) if num_layers is None else min(len(layers), num_layers)
        net = LoweredNetwork(metadata={"source": str(path), "format": "netx"})
        prev = None            # name of the population feeding the next layer
        prev_shape = tuple(input_shape) if input_shape else None
        block = 0              # netx's reset offset counts blocks
        for i in range(n):
            g = layers[str(i)]
            ltype = _scalar(g["type"])
            ltype = ltype.decode() if isinstance(ltype, bytes) else str(ltype)
            where = f"{path}: layer {i} ({ltype})"
            shape = tuple(int(x) for x in np.asarray(g["shape"]).reshape(-1)) if "shape" in g else None
            reset = {}
            if reset_interval:
                reset = dict(reset_interval=int(reset_interval),
                             reset_offset=int(reset_offset) + 1 + block)
            if ltype == "input":
                neuron = _read_neuron(g)
                if neuron is None:
                    net.populations.append(Population("input", shape, kind="input", input_kind="spikes"))
                    prev, prev_shape = "input", shape
                    continue
                name = f"layer{i}"
                if input_mode == "bias":
                    net.populations.append(Population("input", shape, kind="input", input_kind="bias"))
                    net.populations.append(Population(name, shape, source=f"layer {i}", bias_input="input",
                                                      **_neuron_params(neuron, where), **reset))
                elif input_mode == "a_in":
                    net.populations.append(Population("input", shape, kind="input", input_kind="graded"))
                    net.populations.append(Population(name, shape, source=f"layer {i}",
                                                      **_neuron_params(neuron, where), **reset))
                    net.synapses.append(Synapse(f"{name}.in", "input", name, "identity", np.zeros(0, np.int64)))
                else:
                    raise BadInputError(f"input_mode must be 'bias' or 'a_in', not '{input_mode}'")
                prev, prev_shape = name, shape
                block += 1
                continue
            if ltype == "flatten":
                continue
            if ltype not in ("conv", "dense"):
                raise UnsupportedError(f"{where}: layer type '{ltype}' is not supported (input, conv, "
                                       "flatten, dense)")
            if prev is None:
                if prev_shape is None:
                    raise BadInputError(f"{where}: the input shape could not be inferred; pass input_shape")
                net.populations.append(Population("input", prev_shape, kind="input", input_kind="spikes"))
                prev = "input"
            neuron = _read_neuron(g)
            pop_kind = "lif" if neuron is not None else "readout"
            params = _neuron_params(neuron if neuron is not None else _INTEGRATOR, where)
            name = f"layer{i}"
            bias = np.asarray(g["bias"][()]).reshape(-1) if "bias" in g else None
            if ltype == "conv":
                w = np.asarray(g["weight"][()])
                w = w.reshape(w.shape[:4]).astype(np.int64)
                pair = lambda key: tuple(int(x) for x in np.broadcast_to(np.asarray(g[key][()]).reshape(-1), (2,)))
                groups = int(_scalar(g["groups"])) if "groups" in g else 1
                if len(prev_shape) != 3:
                    raise BadInputError(f"{where}: conv needs a (C, H, W) input, got {prev_shape}")
                cshape = shape
                bm = 0 if bias is None else np.broadcast_to(bias.astype(np.int64)[:, None, None], cshape).copy()
                net.populations.append(Population(name, cshape, kind=pop_kind, bias_mant=bm, source=f"layer {i}",
                                                  **params, **reset))
                net.synapses.append(Synapse(f"{name}.syn", prev, name, "conv", w, stride=pair("stride"),
                                            padding=pair("padding"), dilation=pair("dilation"), groups=groups,
                                            source=f"layer {i}"))
                prev, prev_shape = name, cshape
            else:
                if "weight" not in g or isinstance(g["weight"], h5py.Group):
                    raise UnsupportedError(f"{where}: complex or missing dense weights")
                w = np.asarray(g["weight"][()])
                n_out = int(np.prod(shape))
                w = w.reshape(n_out, -1)
                n_in = int(np.prod(prev_shape))
                if w.shape[1] != n_in:
                    raise BadInputError(f"{where}: weight has {w.shape[1]} inputs, previous layer has {n_in}")
                wq, nwb, wexp = netx_weight_bits(w)
                delays = None
                if "delay" in g:
                    d = np.clip(np.asarray(g["delay"][()]).astype(np.int64), 0, 62)
                    if d.ndim == 0:
                        delays = np.full(w.shape, int(d))
                    elif d.ndim == 1 and d.size == n_out:
                        delays = np.repeat(d.reshape(-1, 1), n_in, axis=1)
                    elif d.ndim == 1 and d.size == n_in:
                        delays = np.repeat(d.reshape(1, -1), n_out, axis=0)
                    else:
                        delays = d.reshape(w.shape)
                bm = 0 if bias is None else bias.astype(np.int64).reshape(n_out)
                net.populations.append(Population(name, (n_out,), kind=pop_kind, bias_mant=bm, source=f"layer {i}",
                                                  **params, **reset))
                net.synapses.append(Synapse(f"{name}.syn", prev, name, "dense", wq, weight_exp=wexp,
                                            num_weight_bits=nwb, delays=delays, source=f"layer {i}"))
                prev, prev_shape = name, (n_out,)
            block += 1
        if prev is None:
            raise BadInputError(f"{path}: no layers")
        net.outputs = [prev]
        return net


def netx_test_dir() -> str:
    """The folder of lava-dl 0.6.0's netx test networks and ground truths (``tests/lava/lib/dl/netx`` as
    installed by the lava-dl wheel into site-packages).  Raises a clear error when missing."""
    import os
    import site
    import sys

    cands = []
    for base in list(site.getsitepackages()) + [site.getusersitepackages()] + sys.path:
        if base:
            cands.append(os.path.join(base, "tests", "lava", "lib", "dl", "netx"))
    env = os.environ.get("NEURODEPLOY_NETX_TESTS")
    if env:
        cands.insert(0, env)
    for c in cands:
        if os.path.isfile(os.path.join(c, "tiny.net")):
            return c
    raise BadInputError(
        "lava-dl's netx test networks (tests/lava/lib/dl/netx/tiny.net ...) were not found in site-packages; "
        "they ship inside the lava-dl 0.6.0 wheel: 'pip download lava-dl==0.6.0 --no-deps -d /tmp/w && "
        "python -m zipfile -e /tmp/w/lava_dl-0.6.0-*.whl /tmp/w/x' then set NEURODEPLOY_NETX_TESTS="
        "/tmp/w/x/tests/lava/lib/dl/netx")
