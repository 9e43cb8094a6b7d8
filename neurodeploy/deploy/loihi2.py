"""The Loihi 2 target: NIR graph -> lowered fixed-point network (``neurodeploy.lower``) -> our engine or Lava
``fixed_pt`` -> chip fit of exactly that network.

Artifact folder ``OUT/loihi2/``: ``network.npz`` (the lowered network, format in
:mod:`neurodeploy.lower.network`), ``network.net`` (the netx-expressible sequential prefix of the same
network, when there is one), ``summary.json`` (latency, counts, input handling, attention, quantization,
the input-range calibration, netx coverage).

Input range: real-valued inputs go through a host-side encoder whose bias exponent is sized by the input
range.  It is calibrated from the deployment's samples (``--data``, or the bundled digits for the digits
demo models) when there are any, else :data:`DEFAULT_INPUT_RANGE` (standardised images, mean 0 / std 1,
within 3 sigma).  The choice is recorded in the network metadata and in ``summary.json``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from ..fileio import write_text_atomic
from ..lava.netx_writer import write_netx
from ..lava.processes_used import lava_process_classes, standard_library_only
from .target import Target
from ..lower.from_nir import lower_graph
from ..fidelity import simulate_lowered
from ..mapping import fit, from_lowered
from ..lower.network import LoweredNetwork
from ..models.registry import family_of

DEFAULT_INPUT_RANGE = (-3.0, 3.0)
NETWORK_FILE = "network.npz"
NETX_FILE = "network.net"
SUMMARY_FILE = "summary.json"


@dataclass
class Loihi2Artifact:
    net: object                     # neurodeploy.lower.LoweredNetwork
    quantization: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def summarize(net, quantization: dict | None = None) -> dict:
    """Latency, counts, input handling and attention of a lowered network (``summary.json``)."""
    counts = net.counts()
    lat = int(net.metadata.get("latency", 0))
    T = int(net.metadata.get("time_steps", 0) or 0)
    inputs = []
    for p in net.inputs:
        if p.input_kind == "bias":
            enc = next((e for e in net.encoders if e.name == p.name), None)
            macs = int(np.prod(np.asarray(enc.weights).shape[1:]) * p.size) if enc is not None else 0
            inputs.append({"population": p.name, "mode": "host-side encoder -> neuron bias",
                           "host_macs_per_sample": macs, "chip_cost_per_step": 0,
                           "note": "computed once per sample on the host; the image is held as bias for all steps"})
        else:
            inputs.append({"population": p.name, "mode": f"{p.input_kind} input", "neurons": p.size})
    # attention: the graded form (default: Lava ProdNeuron / GradedVec / graded Sparse, counted on the built
    # records) or process ops (neurodeploy's custom process, lower_graph(..., attention="process"))
    att = [dict(op, lowering="graded", lava_processes="ProdNeuron, GradedVec, Sparse, DelaySparse (standard library)")
           for op in net.metadata.get("attention_graded", [])]
    for a in net.attention:
        dh = a.dim // a.heads
        att.append({"name": a.name, "source": a.source or a.name, "lowering": "process", "heads": a.heads,
                    "tokens": a.tokens, "head_dim": dh,
                    "lava_processes": "neurodeploy SpikingAttention (custom fixed_pt PyProcessModel; no chip form)",
                    "integer_ops_per_step": a.heads * (a.tokens * dh * dh * 2)})
    arch = net.metadata.get("arch")
    s = {"target": "loihi2", "arch": arch, "family": family_of(arch if isinstance(arch, str) else None),
         "latency_steps": lat, "steps_per_sample": T,
         "sample_period_steps": (T + lat) if T else None,
         "populations": counts["populations"], "neurons": counts["neurons"],
         "synapse_groups": counts["synapse_groups"], "synapses": counts["synapses"],
         "attention_ops": counts["attention_ops"],
         "max_delay": max([int(s.balance_delay) for s in net.synapses] + [0]),
         "inputs": inputs, "attention": att, "outputs": list(net.outputs),
         "product_neurons": counts.get("product_neurons", 0), "graded_vec_neurons": counts.get("graded_vec_neurons", 0),
         "attention_latency_added_steps": int(net.metadata.get("attention_latency_added", 0)),
         "readout_scale": net.metadata.get("readout_scale"),
         "input_range": net.metadata.get("input_range"),
         "split_signs": bool(net.metadata.get("split_signs", False)),
         "passes": list(net.metadata.get("passes", [])),
         "lava_processes": lava_process_classes(net),
         "lava_standard_library_only": standard_library_only(net)}
    if quantization is not None:
        s["quantization"] = quantization
    return s


class Loihi2Target(Target):
    name = "loihi2"
    backends = ("fast", "lava")

    # ------------------------------------------------------------------ lower
    def lower(self, deployment, profile=None) -> Loihi2Artifact:
        x = deployment.samples
        if x is not None and deployment.input_domain == "real":
            rng = (float(np.min(x)), float(np.max(x)))
            src = f"calibrated on {deployment.samples_desc} ({len(x)} samples)"
        else:
            rng = DEFAULT_INPUT_RANGE
            src = ("default for standardised images (mean 0, std 1, within 3 sigma)"
                   if deployment.input_domain == "real" else f"not used ({deployment.input_domain} input)")
        split = bool(deployment.lowering.get("split_signs", False))
        net, quant = lower_graph(deployment.annotated, T=deployment.time_steps or None, input_range=rng,
                                 split_signs=split)
        net.metadata["input_range"] = {"range": list(rng), "source": src}
        net.metadata["split_signs"] = split
        net.metadata["quantization"] = {"clipped_weights": quant["clipped_weights"],
                                        "clipped_biases": quant["clipped_biases"]}
        return Loihi2Artifact(net, quant, summarize(net, quant))

    # ------------------------------------------------------------------ simulate
    def simulate(self, artifact: Loihi2Artifact, graph, x, y=None, backend: str | None = None,
                 progress: bool = False, **options) -> dict:
        return simulate_lowered(graph, artifact.net, x, y, backend=backend or "fast", progress=progress, **options)

    # ------------------------------------------------------------------ map
    def map(self, artifact: Loihi2Artifact, profile, rates=None):
        net = from_lowered(artifact.net, name=str(artifact.net.metadata.get("arch", "lowered")))
        T = int(artifact.net.metadata.get("time_steps", 0) or 0)
        if T:                       # a graph without time steps keeps the mapper's default (1)
            net.time_steps = T
        return fit(net, profile, rates=rates)

    def describe(self, artifact: Loihi2Artifact) -> dict:
        return {"mapped_from": "the lowered integer network", "artifact": artifact.summary}

    # ------------------------------------------------------------------ files
    def write(self, artifact: Loihi2Artifact, folder: Path) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        artifact.net.save(str(folder / NETWORK_FILE))
        info = write_netx(artifact.net, str(folder / NETX_FILE))
        summary = dict(artifact.summary)
        summary["netx"] = {"written": bool(info["layers"]), "layers": info["layers"],
                           "populations": info["populations"], "stopped": info["stopped"],
                           "run_with": f"netx.hdf5.Network(net_config, reset_interval={summary['sample_period_steps']})"}
        summary["files"] = {"lowered": NETWORK_FILE, "netx": NETX_FILE if info["path"] else None,
                            "summary": SUMMARY_FILE}
        artifact.summary = summary
        text = json.dumps(summary, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
        write_text_atomic(folder / SUMMARY_FILE, text + "\n")
        return [folder / NETWORK_FILE] + ([folder / NETX_FILE] if info["path"] else []) + [folder / SUMMARY_FILE]

    def read(self, folder: Path) -> Loihi2Artifact:
        folder = Path(folder)
        npz = folder / NETWORK_FILE
        if not npz.is_file():
            raise BadInputError(f"{folder}: no {NETWORK_FILE} (not a Loihi 2 artifact folder written by "
                                "'neurodeploy export --target loihi2')")
        net = LoweredNetwork.load(str(npz))
        summary = {}
        sp = folder / SUMMARY_FILE
        if sp.is_file():
            try:
                summary = json.loads(sp.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise BadInputError(f"{sp}: not a JSON summary ({exc})") from None
        return Loihi2Artifact(net, dict(summary.get("quantization") or {}), summary or summarize(net))
