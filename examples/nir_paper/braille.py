"""Write a braille-shaped recurrent CubaLIF NIR graph (the NIR paper's task 3 network, random weights).

    .venv/bin/python examples/nir_paper/braille.py braille.nir [--seed 0] [--readout cubalif|li]

The paper's trained file (paper/03_rnn/braille_noDelay_bias_zero.nir) is not available here, so this
builds a graph of the same shape and parameters as snnTorch exports it (docs: /work/shared/reference/nir.md
section 5.1): ``fc1`` Affine 12 -> 38, a nested subgraph ``lif1`` holding ``lif`` CubaLIF(38) and its
recurrent ``w_rec`` Affine 38 x 38 (with bias), ``fc2`` Affine 38 -> 7 and ``lif2`` CubaLIF(7) (or an LI
readout).  Parameters in seconds with dt = 1e-4 (NIR's convention): tau_mem = 1e-3, tau_syn = 2.22e-4,
r = tau_mem / dt = 10, w_in = tau_syn / dt = 2.22 (snnTorch's convention: one unit of input adds one unit
to the current), v_threshold = 1, v_reset = 0.  Weights are seeded normal draws (NOT the trained ones).
snnTorch 1.0.0's own RSynaptic export fails (nirtorch "Cannot find the input of an empty graph"), so the
graph is written with the ``nir`` package in the layout snnTorch's exporter uses for RLeaky.
"""
from __future__ import annotations

import argparse
import sys

import nir
import numpy as np

DT = 1e-4
N_IN, N_HID, N_OUT = 12, 38, 7


def braille_graph(seed: int = 0, readout: str = "cubalif", bias: float = 0.05) -> nir.NIRGraph:
    """The braille-shaped graph (see the module docstring); ``readout``: ``cubalif`` (as the paper's
    file) or ``li`` (a non-spiking leaky readout)."""
    rng = np.random.default_rng(seed)
    full = lambda n, v: np.full(n, v, np.float32)  # noqa: E731

    def cuba(n):
        return nir.CubaLIF(tau_syn=full(n, 2.22e-4), tau_mem=full(n, 1e-3), r=full(n, 10.0), v_leak=full(n, 0.0),
                           v_threshold=full(n, 1.0), v_reset=full(n, 0.0), w_in=full(n, 2.22))

    def affine(o, i, scale):
        return nir.Affine(weight=(rng.standard_normal((o, i)) * scale).astype(np.float32),
                          bias=(rng.standard_normal(o) * bias).astype(np.float32))

    inner = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([N_HID])}), "lif": cuba(N_HID),
               "w_rec": affine(N_HID, N_HID, 0.15), "output": nir.Output(output_type={"output": np.array([N_HID])})},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")], type_check=False)
    if readout == "cubalif":
        out = cuba(N_OUT)
    elif readout == "li":
        out = nir.LI(tau=full(N_OUT, 1e-3), r=full(N_OUT, 10.0), v_leak=full(N_OUT, 0.0))
    else:
        raise ValueError(f"readout must be 'cubalif' or 'li', not {readout!r}")
    nodes = {"input": nir.Input(input_type={"input": np.array([N_IN])}), "fc1": affine(N_HID, N_IN, 0.6),
             "lif1": inner, "fc2": affine(N_OUT, N_HID, 0.5), "lif2": out,
             "output": nir.Output(output_type={"output": np.array([N_OUT])})}
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={}, type_check=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the .nir file to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--readout", choices=("cubalif", "li"), default="cubalif")
    ap.add_argument("--no-bias", action="store_true",
                    help="zero Affine biases (as the paper's noBias file; Xylo has no weight biases)")
    args = ap.parse_args(argv)
    nir.write(args.out, braille_graph(args.seed, args.readout, bias=0.0 if args.no_bias else 0.05))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
