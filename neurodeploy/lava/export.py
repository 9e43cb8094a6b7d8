"""``export_loihi2(graph, out_dir)``: lower a NIR graph for Loihi 2 and write OUT/loihi2/.

Files: ``network.npz`` (the lowered network, format in neurodeploy.lower.network), ``network.net`` (the
netx-expressible sequential prefix, when there is one), ``summary.json`` (latency, neuron and synapse
counts, input handling and its cost, attention options, per-layer quantization report, netx coverage).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..fileio import write_text_atomic
from ..lower.from_nir import lower_graph
from ..lower.network import LoweredNetwork
from .netx_writer import write_netx


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
    from ..errors import UnsupportedError
    from ..lower.attention_neurons import attention_neurons, attention_to_neurons, and_neuron_count
    att = []
    for a in net.attention:
        dh = a.dim // a.heads
        try:
            # counted on the groups the neuron lowering really builds
            pop, syns = attention_neurons(a)
            neuro = {"and_neurons": pop.size, "synapses": int(sum(np.count_nonzero(x.weights) for x in syns)),
                     "synapse_groups": len(syns), "extra_latency_steps": 1, "feasible": True}
        except UnsupportedError as exc:
            M = and_neuron_count(a)
            neuro = {"and_neurons": M, "synapses": 4 * M, "synapse_groups": 4, "extra_latency_steps": 1,
                     "feasible": False, "refused": str(exc)}
        neuro["note"] = ("y[c,n] = sum_{j,m} AND(Q[j,n], K[j,m], V[c,m]): one three-input coincidence LIF "
                         "(vth 2, no memory) per term, fed by three excitatory all-ones sparse groups, summed "
                         "by one sparse group of weight m into the attention LIF (lower with "
                         "attention='neurons')")
        att.append({
            "name": a.name, "heads": a.heads, "dim": a.dim, "tokens": a.tokens,
            "process_option": {"lava_process": "neurodeploy SpikingAttention (fixed_pt PyProcessModel)",
                               "integer_ops_per_step": a.heads * (a.tokens * dh * dh * 2),
                               "neurons": 0, "synapses": 0},
            "neurocore_option": neuro,
        })
    options = {"process": {"neurons": counts["neurons"], "synapses": counts["synapses"],
                           "synapse_groups": counts["synapse_groups"], "attention_ops": counts["attention_ops"],
                           "latency_steps": lat}}
    if net.attention:
        try:
            nn = attention_to_neurons(net)
            c2 = nn.counts()
            options["neurons"] = {"neurons": c2["neurons"], "synapses": c2["synapses"],
                                  "synapse_groups": c2["synapse_groups"], "attention_ops": c2["attention_ops"],
                                  "latency_steps": int(nn.metadata.get("latency", 0))}
        except UnsupportedError as exc:
            options["neurons"] = {"feasible": False, "refused": str(exc)}
    s = {"target": "loihi2", "latency_steps": lat, "steps_per_sample": T,
         "sample_period_steps": (T + lat) if T else None,
         "populations": counts["populations"], "neurons": counts["neurons"],
         "synapse_groups": counts["synapse_groups"], "synapses": counts["synapses"],
         "max_delay": max([int(s.balance_delay) for s in net.synapses] + [0]),
         "inputs": inputs, "attention": att, "attention_options": options, "outputs": list(net.outputs),
         "readout_scale": net.metadata.get("readout_scale")}
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
    # paths relative to OUT: the folder is built in a staging sibling and swapped in whole (fileio.staged_dir)
    summary["files"] = {"lowered": "loihi2/network.npz", "netx": "loihi2/network.net" if info["path"] else None,
                        "summary": "loihi2/summary.json"}
    _atomic_json(summary, out / "summary.json")
    return summary
