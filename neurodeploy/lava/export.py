"""``export_loihi2(graph, out_dir)``: lower a NIR graph for Loihi 2 and write OUT/loihi2/.

Files: ``network.npz`` (the lowered network, format in neurodeploy.lower.network), ``network.net`` (the
netx-expressible sequential prefix, when there is one), ``summary.json`` (latency, neuron and synapse
counts, input handling and its cost, attention lowering (order, product neurons, added latency), per-layer quantization report, netx coverage).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..fileio import write_text_atomic
from ..lower.from_nir import lower_graph
from ..lower.network import LoweredNetwork
from .netx_writer import write_netx
from .processes_used import lava_process_classes, standard_library_only


def _atomic_json(obj, path: Path) -> None:
    text = json.dumps(obj, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    write_text_atomic(path, text + "\n")


def summarize(net: LoweredNetwork, report: dict | None = None) -> dict:
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
    s = {"target": "loihi2", "latency_steps": lat, "steps_per_sample": T,
         "sample_period_steps": (T + lat) if T else None,
         "populations": counts["populations"], "neurons": counts["neurons"],
         "synapse_groups": counts["synapse_groups"], "synapses": counts["synapses"],
         "max_delay": max([int(s.balance_delay) for s in net.synapses] + [0]),
         "inputs": inputs, "attention": att, "outputs": list(net.outputs),
         "product_neurons": counts["product_neurons"], "graded_vec_neurons": counts["graded_vec_neurons"],
         "attention_latency_added_steps": int(net.metadata.get("attention_latency_added", 0)),
         "readout_scale": net.metadata.get("readout_scale"),
         "lava_processes": lava_process_classes(net),
         "lava_standard_library_only": standard_library_only(net)}
    if report is not None:
        s["quantization"] = report
    return s


def export_loihi2(graph, out_dir, T: int | None = None, input_range=(-3.0, 3.0)) -> dict:
    """Lower ``graph`` and write OUT/loihi2/{network.npz, network.net, summary.json}; returns the summary."""
    out = Path(out_dir) / "loihi2"
    out.mkdir(parents=True, exist_ok=True)
    net, report = lower_graph(graph, T=T, input_range=input_range)
    net.save(str(out / "network.npz"))
    info = write_netx(net, str(out / "network.net"))
    netx_bias_rounded = False
    if info["layers"] < 2 or "bias_exp" in str(info["stopped"]):
        # netx fixes bias_exp = 6: write the netx file from a lowering with biases in weight units
        net6, _ = lower_graph(graph, T=T, input_range=input_range, bias_exp_min=6)
        info6 = write_netx(net6, str(out / "network.net"))
        if info6["layers"] > info["layers"]:
            info, netx_bias_rounded = info6, True
    summary = summarize(net, report)
    summary["netx"] = {"written": bool(info["layers"]), "layers": info["layers"],
                       "populations": info["populations"], "stopped": info["stopped"],
                       "biases_rounded_to_weight_units": netx_bias_rounded,
                       "run_with": f"netx.hdf5.Network(net_config, reset_interval={summary['sample_period_steps']})"}
    summary["files"] = {"lowered": str(out / "network.npz"),
                        "netx": info["path"], "summary": str(out / "summary.json")}
    _atomic_json(summary, out / "summary.json")
    return summary
