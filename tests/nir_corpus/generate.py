"""The NIR corpus of tests/test_nir_corpus.py: small graphs written by the ``nir`` package, snnTorch 1.0.0,
Norse 1.1.0 and the NIR paper (tests/data/nir-paper), as .nir files in a folder.

``python tests/nir_corpus/generate.py OUT`` writes them; ``build_corpus(out)`` returns ``{name: path}``.
Every graph is small (at most a few hundred neurons) so that every CLI command runs on each in well under
a second.  Weights are seeded; inputs of 4-6 features; dt = 1e-4 s (NIR's convention, snnTorch's exporter).
"""
from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import nir
import numpy as np

DT = 1e-4
REPO = Path(__file__).resolve().parents[2]
NIR_PAPER = REPO / "tests" / "data" / "nir-paper"


def _rng(seed):
    return np.random.default_rng(seed)


def _w(rng, out, inp, scale=1.5):
    return (rng.standard_normal((out, inp)) * scale).astype(np.float32)


def _full(shape, v):
    return np.full(shape, v, dtype=np.float32)


def lif(n, tau_steps=2.0, th=1.0, v_leak=0.0, v_reset=0.0, r=1.0):
    return nir.LIF(tau=_full(n, tau_steps * DT), r=_full(n, r), v_leak=_full(n, v_leak), v_threshold=_full(n, th),
                   v_reset=_full(n, v_reset))


def cubalif(n, syn=2.0, mem=4.0, th=1.0, w_in=1.0, v_leak=0.0):
    return nir.CubaLIF(tau_syn=_full(n, syn * DT), tau_mem=_full(n, mem * DT), r=_full(n, mem), v_leak=_full(n, v_leak),
                       v_threshold=_full(n, th), v_reset=_full(n, 0.0), w_in=_full(n, w_in))


def chain(*nodes, in_shape=(4,), out_shape=None, recurrent=None, type_check=True):
    """Input -> nodes... -> Output; ``recurrent``: extra edges by node index."""
    names = [f"n{i}" for i in range(len(nodes))]
    ns = {"input": nir.Input(input_type={"input": np.asarray(in_shape)})}
    ns.update(dict(zip(names, nodes)))
    last = nodes[-1]
    if out_shape is None:
        out_shape = _out_shape(last)
    ns["output"] = nir.Output(output_type={"output": np.asarray(out_shape)})
    seq = ["input"] + names + ["output"]
    edges = list(zip(seq[:-1], seq[1:]))
    for a, b in recurrent or []:
        edges.append((names[a], names[b]))
    return nir.NIRGraph(nodes=ns, edges=edges, metadata={}, type_check=type_check)


def _out_shape(node):
    if isinstance(node, (nir.Affine, nir.Linear)):
        return (node.weight.shape[0],)
    return tuple(int(v) for v in np.asarray(next(iter(node.output_type.values()))).reshape(-1))


def nir_graphs() -> dict[str, nir.NIRGraph]:
    """Graphs built with the ``nir`` package: every primitive, recurrence, nesting, quirks."""
    r = _rng(0)
    g: dict[str, nir.NIRGraph] = {}
    aff = lambda o, i, s=1.5: nir.Affine(weight=_w(r, o, i, s), bias=(r.standard_normal(o) * 0.2).astype(np.float32))  # noqa: E731
    g["nir_affine_lif"] = chain(aff(6, 4), lif(6))
    g["nir_linear_lif"] = chain(nir.Linear(weight=_w(r, 5, 4)), lif(5, tau_steps=4.0))
    g["nir_affine_if"] = chain(aff(6, 4), nir.IF(r=_full(6, 1.0), v_threshold=_full(6, 1.0), v_reset=_full(6, 0.0)))
    g["nir_lif_vleak"] = chain(aff(5, 4), lif(5, v_leak=0.3))
    g["nir_lif_vreset"] = chain(aff(5, 4), lif(5, v_reset=-0.2))
    g["nir_if_vreset"] = chain(aff(5, 4), nir.IF(r=_full(5, 1.0), v_threshold=_full(5, 1.0), v_reset=_full(5, 0.1)))
    g["nir_lif_li_readout"] = chain(aff(6, 4), lif(6), aff(3, 6), nir.LI(tau=_full(3, 3 * DT), r=_full(3, 1.0), v_leak=_full(3, 0.0)))
    g["nir_lif_i_readout"] = chain(aff(6, 4), lif(6), aff(3, 6), nir.I(r=_full(3, 1.0)))
    g["nir_cubalif"] = chain(aff(6, 4), cubalif(6))
    g["nir_cubalif_win_vleak"] = chain(aff(6, 4), cubalif(6, w_in=2.0, v_leak=0.1))
    g["nir_cubali_readout"] = chain(aff(6, 4), lif(6), aff(3, 6),
                                    nir.CubaLI(tau_syn=_full(3, 2 * DT), tau_mem=_full(3, 4 * DT), r=_full(3, 1.0),
                                               v_leak=_full(3, 0.0), w_in=_full(3, 1.0)))
    g["nir_delay"] = chain(aff(5, 4), lif(5), nir.Delay(delay=np.array([0, 1, 2, 3, 4], dtype=np.float32) * DT),
                           aff(3, 5), lif(3))
    g["nir_scale"] = chain(nir.Scale(scale=_full(4, 2.0)), aff(5, 4), lif(5))
    g["nir_threshold"] = chain(aff(5, 4), nir.Threshold(threshold=_full(5, 0.5)))
    g["nir_two_layers"] = chain(aff(8, 4), lif(8), aff(3, 8), lif(3))
    # convolutions, pools, flatten
    c2 = nir.Conv2d(input_shape=(6, 6), weight=(r.standard_normal((3, 2, 3, 3)) * 0.8).astype(np.float32), stride=1,
                    padding=1, dilation=1, groups=1, bias=np.zeros(3, np.float32))
    g["nir_conv2d_sumpool"] = chain(c2, lif((3, 6, 6)), nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                    padding=np.array([0, 0])),
                                    nir.Flatten(input_type={"input": np.array([3, 3, 3])}, start_dim=0, end_dim=-1),
                                    aff(4, 27), lif(4), in_shape=(2, 6, 6))
    c2b = nir.Conv2d(input_shape=(6, 6), weight=(r.standard_normal((2, 2, 3, 3)) * 0.8).astype(np.float32), stride=1,
                     padding=0, dilation=1, groups=1, bias=np.zeros(2, np.float32))
    g["nir_conv2d_avgpool"] = chain(c2b, lif((2, 4, 4)), nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                    padding=np.array([0, 0])), lif((2, 2, 2), tau_steps=1.0, th=0.2),
                                    nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1),
                                    aff(3, 8), lif(3), in_shape=(2, 6, 6))
    c1 = nir.Conv1d(input_shape=8, weight=(r.standard_normal((3, 2, 3)) * 0.8).astype(np.float32), stride=1, padding=1,
                    dilation=1, groups=1, bias=np.zeros(3, np.float32))
    g["nir_conv1d_input"] = chain(c1, lif((3, 8)), nir.Flatten(input_type={"input": np.array([3, 8])}, start_dim=0, end_dim=-1),
                                  aff(3, 24), lif(3), in_shape=(2, 8))
    # recurrence
    g["nir_rec_self_edge"] = chain(aff(5, 4), lif(5), recurrent=[(1, 1)])
    g["nir_rec_affine"] = chain(aff(5, 4), lif(5), aff(5, 5, 0.8), recurrent=[(2, 1)], out_shape=(5,))
    g["nir_rec_to_earlier"] = chain(aff(5, 4), lif(5), aff(5, 5), lif(5), aff(5, 5, 0.5), recurrent=[(4, 1)], out_shape=(5,))
    g["nir_rec_cubalif"] = chain(aff(6, 4), cubalif(6), aff(6, 6, 0.5), recurrent=[(2, 1)], out_shape=(6,))
    # fix the output of the recurrent chains: read the neuron, not the recurrent weights
    for key, idx in (("nir_rec_affine", 1), ("nir_rec_to_earlier", 3), ("nir_rec_cubalif", 1)):
        gr = g[key]
        last = f"n{len(gr.nodes) - 3}"
        gr.edges = [e for e in gr.edges if e != (last, "output")] + [(f"n{idx}", "output")]
    # nested subgraph
    inner = chain(aff(5, 4), lif(5))
    g["nir_nested"] = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([4])}), "sub": inner,
                                          "output": nir.Output(output_type={"output": np.array([5])})},
                                   edges=[("input", "sub"), ("sub", "output")], metadata={})
    inner_rec = chain(lif(5), aff(5, 5, 0.7), recurrent=[(1, 0)], in_shape=(5,), out_shape=(5,))
    inner_rec.edges = [e for e in inner_rec.edges if e != ("n1", "output")] + [("n0", "output")]
    g["nir_nested_recurrent"] = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([4])}), "fc": aff(5, 4), "rec": inner_rec,
               "output": nir.Output(output_type={"output": np.array([5])})},
        edges=[("input", "fc"), ("fc", "rec"), ("rec", "output")], metadata={})
    # fan-in: two paths summed
    g["nir_fan_in"] = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([4])}), "a": aff(5, 4), "b": nir.Linear(weight=_w(r, 5, 4)),
               "lif": lif(5), "output": nir.Output(output_type={"output": np.array([5])})},
        edges=[("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"), ("lif", "output")], metadata={})
    # quirks of other tools' files
    q = chain(aff(5, 4), lif(5), in_shape=(1, 4), out_shape=(1, 5), type_check=False)
    g["quirk_batch_dim"] = q
    g["quirk_scalar_params"] = chain(aff(5, 4), nir.LIF(tau=np.array([2 * DT], np.float32), r=np.array([1.0], np.float32),
                                                         v_leak=np.array([0.0], np.float32), v_threshold=np.array([1.0], np.float32),
                                                         v_reset=np.array([0.0], np.float32)), out_shape=(5,),
                                     type_check=False)
    g["quirk_no_metadata_if"] = chain(nir.Linear(weight=_w(r, 5, 4)), nir.IF(r=_full(5, 1.0), v_threshold=_full(5, 1.0),
                                                                             v_reset=_full(5, 0.0)))
    return g


def snntorch_models():
    """(name, model, sample step) for snnTorch 1.0.0 models (imported by neurodeploy's front end)."""
    import snntorch as snn
    import torch

    torch.manual_seed(0)
    kw = dict(init_hidden=True, reset_mechanism="zero")
    beta = lambda n: torch.full((n,), 0.8)  # noqa: E731
    th = lambda n: torch.ones(n)  # noqa: E731
    out = []
    out.append(("snn_leaky", torch.nn.Sequential(torch.nn.Linear(4, 6), snn.Leaky(beta=beta(6), threshold=th(6), **kw)), (1, 4)))
    out.append(("snn_leaky_scalar", torch.nn.Sequential(torch.nn.Linear(4, 6), snn.Leaky(beta=0.7, threshold=1.0, **kw),
                                                        torch.nn.Linear(6, 3), snn.Leaky(beta=0.7, **kw)), (1, 4)))
    out.append(("snn_synaptic", torch.nn.Sequential(torch.nn.Linear(4, 6), snn.Synaptic(alpha=torch.full((6,), 0.5), beta=beta(6),
                                                    threshold=th(6), reset_delay=False, **kw)), (1, 4)))
    out.append(("snn_rleaky", torch.nn.Sequential(torch.nn.Linear(4, 6), snn.RLeaky(beta=beta(6), threshold=th(6), linear_features=6,
                                                  reset_delay=False, **kw)), (1, 4)))
    out.append(("snn_rsynaptic", torch.nn.Sequential(torch.nn.Linear(4, 6), snn.RSynaptic(alpha=torch.full((6,), 0.5), beta=beta(6),
                                                     threshold=th(6), linear_features=6, reset_delay=False, **kw)), (1, 4)))
    out.append(("snn_conv", torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), snn.Leaky(beta=0.8, **kw), torch.nn.AvgPool2d(2),
                                                torch.nn.Flatten(), torch.nn.Linear(27, 3), snn.Leaky(beta=beta(3), threshold=th(3), **kw)),
                (1, 2, 6, 6)))
    out.append(("snn_leaky_subtract", torch.nn.Sequential(torch.nn.Linear(4, 6), snn.Leaky(beta=0.8, init_hidden=True)), (1, 4)))
    out.append(("snn_synaptic_delayed_reset", torch.nn.Sequential(torch.nn.Linear(4, 6), snn.Synaptic(alpha=0.5, beta=0.8, **kw)), (1, 4)))
    return out


def norse_models():
    import norse.torch as nt
    import torch

    torch.manual_seed(0)
    p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(500.0), v_th=torch.tensor(0.5))
    out = []
    out.append(("norse_lifbox", nt.SequentialState(torch.nn.Linear(4, 6), nt.LIFBoxCell(p)), (1, 4)))
    out.append(("norse_lifbox_li", nt.SequentialState(torch.nn.Linear(4, 6), nt.LIFBoxCell(p), torch.nn.Linear(6, 3),
                                                      nt.LIBoxCell()), (1, 4)))
    out.append(("norse_iaf", nt.SequentialState(torch.nn.Linear(4, 6), nt.IAFCell(nt.IAFParameters(v_th=torch.tensor(0.5)))), (1, 4)))
    out.append(("norse_conv", nt.SequentialState(torch.nn.Conv2d(2, 3, 3, padding=1), nt.LIFBoxCell(p), torch.nn.Flatten(),
                                                 torch.nn.Linear(108, 3), nt.LIFBoxCell(p)), (1, 2, 6, 6)))
    out.append(("norse_lifcell", nt.SequentialState(torch.nn.Linear(4, 6), nt.LIFCell()), (1, 4)))
    return out


def raw_tool_files(out: Path) -> dict[str, Path]:
    """Files exactly as the tools' own exporters write them (quirks included): snnTorch without ignore_dims
    (batch dimension in the Input), Norse's to_nir (scalar parameters)."""
    import norse.torch as nt
    import snntorch as snn
    import torch
    import nirtorch
    from snntorch.export_nir import _extract_snntorch_module

    torch.manual_seed(1)
    files = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = torch.nn.Sequential(torch.nn.Linear(4, 5), snn.Leaky(beta=torch.full((5,), 0.8), threshold=torch.ones(5),
                                                                 init_hidden=True, reset_mechanism="zero"))
        # what snnTorch's export_to_nir builds before its own (failing) type inference: nirtorch's traced
        # graph keeps the batch dimension of the sample in the Input and Output types
        g = nirtorch.extract_nir_graph(m, _extract_snntorch_module, torch.zeros(1, 4), model_name="snntorch")
        files["raw_snntorch_batch_dim"] = _write_raw(g, out / "raw_snntorch_batch_dim.nir")
        m = nt.SequentialState(torch.nn.Linear(4, 5), nt.LIFBoxCell())
        g = nt.to_nir(m, torch.zeros(1, 4))
        files["raw_norse_scalar"] = _write_raw(g, out / "raw_norse_scalar.nir")
    return files


def _write_raw(g, path: Path) -> Path:
    import torch

    def conv(node):
        if isinstance(node, nir.NIRGraph):
            for sub in node.nodes.values():
                conv(sub)
            return
        for k, v in vars(node).items():
            if isinstance(v, torch.Tensor):
                setattr(node, k, v.detach().numpy())
    conv(g)
    nir.write(path, g, compression=None)  # Norse's 0-d parameters cannot be gzip-compressed by h5py
    return path


def build_corpus(out: str | Path) -> dict[str, Path]:
    """Write every corpus graph into ``out``; returns {name: path}."""
    import torch

    from neurodeploy.errors import NeurodeployError
    from neurodeploy.exporters import to_nir
    from neurodeploy.graph import write_graph

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name, graph in nir_graphs().items():
        path = out / f"{name}.nir"
        nir.write(path, graph)
        files[name] = path
    for name, model, shape in snntorch_models() + norse_models():
        path = out / f"{name}.nir"
        try:
            graph = to_nir(model, sample_data=torch.zeros(shape))
        except NeurodeployError as exc:  # refused at the front end: record the refusal as the corpus entry
            path = out / f"{name}.refused.txt"
            path.write_text(str(exc) + "\n")
            files[name] = path
            continue
        write_graph(graph, path)
        files[name] = path
    files.update(raw_tool_files(out))
    for rel in ("01_lif/lif_norse.nir", "02_cnn/cnn_sinabs.nir"):
        src = NIR_PAPER / rel
        dst = out / f"paper_{Path(rel).stem}.nir"
        shutil.copyfile(src, dst)
        files[f"paper_{Path(rel).stem}"] = dst
    return files


if __name__ == "__main__":
    for k, v in build_corpus(sys.argv[1] if len(sys.argv) > 1 else "nir-corpus").items():
        print(k, v)
