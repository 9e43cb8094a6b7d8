"""The networks the Loihi 2 compiler's public per-core tables describe (lava-dl tutorial notebooks), built from
plain layer lists: the MLPs (MNIST, Oxford), PilotNet LIF / SDNN and YOLO-KP.  ``mapping.calibration`` maps them
for the report's per-layer calibration table; tests and benchmarks compare them with the compiler's figures."""
from __future__ import annotations

from ..errors import BadInputError
from .network import MapNetwork, MapPopulation, MapSynapses, _pair, cxhw


def mlp(sizes: list[int], name: str = "mlp", input_on_chip: bool = False, weight_bits: int = 8) -> MapNetwork:
    """A fully connected chain sizes[0] -> sizes[1] -> ... (input from the host unless ``input_on_chip``)."""
    net = MapNetwork(name=name)
    net.add_pop(MapPopulation("input", (sizes[0], 1, 1), "input", "input", input_on_chip))
    prev = "input"
    for i, n in enumerate(sizes[1:]):
        p = net.add_pop(MapPopulation(f"fc{i}", (n, 1, 1), f"fc{i}"))
        net.add_syn(MapSynapses(f"fc{i}.w", prev, p.name, "dense", f"fc{i}", weight_bits))
        net.use("dense", p.layer)
        prev = p.name
    return net


def conv_chain(input_shape, layers: list[dict], name: str = "convnet", input_on_chip: bool = True) -> MapNetwork:
    """A chain of conv / dense layers: each dict has ``type`` (conv | dense) and for conv ``out``, ``kernel``,
    ``stride``, ``padding``; for dense ``out``.  Output shapes are computed as PyTorch does."""
    net = MapNetwork(name=name)
    shape = cxhw(input_shape)
    net.add_pop(MapPopulation("input", shape, "input", "input", input_on_chip))
    prev = "input"
    for i, L in enumerate(layers):
        lname = L.get("name", f"{L['type']}{i}")
        if L["type"] == "conv":
            kh, kw = _pair(L.get("kernel", 3))
            sh, sw = _pair(L.get("stride", 1))
            ph, pw = _pair(L.get("padding", 0))
            c, h, w = shape
            shape = (int(L["out"]), (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
            net.add_pop(MapPopulation(lname, shape, lname))
            net.add_syn(MapSynapses(f"{lname}.w", prev, lname, "conv", lname, kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw)))
            net.use("conv2d", lname)
        elif L["type"] == "dense":
            shape = (int(L["out"]), 1, 1)
            net.add_pop(MapPopulation(lname, shape, lname))
            net.add_syn(MapSynapses(f"{lname}.w", prev, lname, "dense", lname))
            net.use("dense", lname)
        else:
            raise BadInputError(f"layer {i}: unknown type {L['type']!r}")
        prev = lname
    return net


_PILOTNET = [
    {"type": "conv", "out": 24, "kernel": 3, "stride": 2, "name": "conv1"},
    {"type": "conv", "out": 36, "kernel": 3, "stride": 2, "name": "conv2"},
    {"type": "conv", "out": 48, "kernel": 3, "stride": 2, "name": "conv3"},
    {"type": "conv", "out": 64, "kernel": 3, "stride": (2, 1), "padding": (1, 0), "name": "conv4"},
    {"type": "conv", "out": 64, "kernel": 3, "stride": 1, "name": "conv5"},
    {"type": "dense", "out": 100, "name": "fc1"},
    {"type": "dense", "out": 50, "name": "fc2"},
    {"type": "dense", "out": 10, "name": "fc3"},
    {"type": "dense", "out": 1, "name": "fc4"},
]


def pilotnet_lif() -> MapNetwork:
    """PilotNet-LIF as shipped in lava-dl (lava_loihi.md 3.5): input [3, 66, 200] on chip (image as bias),
    5 convs, flatten, dense 100 -> 50 -> 10 -> 1."""
    return conv_chain((3, 66, 200), _PILOTNET, name="pilotnet-lif", input_on_chip=True)


def pilotnet_sdnn() -> MapNetwork:
    """PilotNet-SDNN of lava-dl's netx tutorial (pilotnet_sdnn/network.net, loaded with skip_layers=1): the
    same layers as PilotNet-LIF, the input layer on the host."""
    return conv_chain((3, 66, 200), _PILOTNET, name="pilotnet-sdnn", input_on_chip=False)


def yolo_kp() -> MapNetwork:
    """YOLO-KP SDNN of lava-dl's netx tutorial (yolo_kp/run.ipynb; geometry from lava-dl's
    slayer/object_detection/models/yolo_kp.py): input [3, 448, 448] on the host, 10 convs."""
    layers = [(16, 3, 2), (32, 3, 2), (64, 3, 2), (128, 3, 2), (256, 3, 1), (256, 3, 2), (512, 3, 1),
              (256, 1, 1), (512, 3, 1), (48, 1, 1)]
    return conv_chain((3, 448, 448), [{"type": "conv", "out": c, "kernel": k, "stride": s, "padding": k // 2,
                                       "name": f"conv{i + 1}"} for i, (c, k, s) in enumerate(layers)],
                      name="yolo-kp", input_on_chip=False)
