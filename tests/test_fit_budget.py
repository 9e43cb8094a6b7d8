"""Fit to a budget (issue 28 part 3): ``--max-chips`` / ``--system`` make the Loihi 2 lowering try every candidate
configuration (neurodeploy/deploy/configs.py), keep the lowest-latency one that fits, write exactly that network
(summary.json records it, ``simulate OUT`` runs it) and show the configurations tried (table + plot); nothing
fits: exit 1, one line naming the smallest fit; bad budgets: exit 2, one line naming the option."""
from __future__ import annotations

import json
import re

import pytest

import neurodeploy
from neurodeploy.cli import main
from neurodeploy.deploy.configs import CANDIDATES, DEFAULT, FALLBACK, LoweringConfig, candidates, with_schedule
from neurodeploy.lower.network_file import load_network

from export_helpers import random_model


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    return neurodeploy.save_checkpoint(random_model("spikingformer-digits"), tmp_path_factory.mktemp("ck") / "d.pt")


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_candidates_are_a_table_and_the_default_builds_the_stream_once():
    assert DEFAULT is CANDIDATES[0] and DEFAULT.residual_stream == "relay"
    assert [(c.residual_stream, c.attention_schedule) for c in CANDIDATES] == [
        ("relay", "parallel"), ("expanded", "parallel"), ("relay", "packed"), ("expanded", "packed")]
    # tried only when none of those fits, in order of latency: the repacked twins of the packed candidates (fewer
    # cores, more steps), then the token-tiled attention at a lower sample rate (8, 4, 2 tokens per tile)
    assert [(c.name, c.residual_stream, c.attention_schedule) for c in FALLBACK] == [
        ("stream built once, repacked attention", "relay", "repacked"),
        ("stream expanded, repacked attention", "expanded", "repacked"),
        ("stream built once, tiled-8 attention", "relay", "tiled-8"),
        ("stream built once, tiled-4 attention", "relay", "tiled-4"),
        ("stream built once, tiled-2 attention", "relay", "tiled-2")]
    # --attention-schedule fixes the schedule: the search tries only those candidates
    assert [c.attention_schedule for c in candidates("packed")] == ["packed", "packed"]
    # a schedule outside the table (repacked): both stream forms with it
    assert [(c.name, c.residual_stream, c.attention_schedule) for c in candidates("repacked")] == [
        ("stream built once, repacked attention", "relay", "repacked"),
        ("stream expanded, repacked attention", "expanded", "repacked")]
    assert with_schedule(DEFAULT, "packed").lower_kwargs() == {"residual_stream": "relay",
                                                                "attention_schedule": "packed"}
    assert with_schedule(DEFAULT, None) is DEFAULT and with_schedule(DEFAULT, "parallel") is DEFAULT
    # a new option is one line: it reaches lower_graph only when it differs from today's
    assert LoweringConfig("x", attention_schedule="serial").lower_kwargs() == {"residual_stream": "relay",
                                                                             "attention_schedule": "serial"}
    assert DEFAULT.lower_kwargs() == {"residual_stream": "relay"}


@pytest.mark.slow
def test_max_chips_chooses_the_lowest_latency_fit_and_writes_it(digits_ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["export", str(digits_ckpt), "-o", str(out), "--target", "loihi2", "--max-chips", "8"]) == 0
    s = json.loads((out / "loihi2" / "summary.json").read_text())
    tried = s["configurations"]["tried"]
    assert [r["name"] for r in tried] == [c.name for c in CANDIDATES]
    # the random digits model fits one chip either way; expanded has 2 steps less (no stream relays), packed
    # attention 4 steps more per block (docs/lowering.md)
    by = {r["name"]: r for r in tried}
    assert by["stream expanded"]["latency_steps"] == by["stream built once"]["latency_steps"] - 2
    assert by["stream expanded, packed attention"]["latency_steps"] == by["stream expanded"]["latency_steps"] + 4
    assert all(r["fits"] and r["chips"] == 1 and r["system"] == "Oheo Gulch" and r["within_budget"] for r in tried)
    assert s["lowering_config"]["name"] == "stream expanded" and by["stream expanded"]["chosen"]
    assert by["stream built once"]["latency_ms"] == pytest.approx(by["stream built once"]["latency_steps"] * 2.45)
    assert all(r["energy_uj"] > 0 for r in tried)
    # the artifact is the chosen network
    net = load_network(str(out / "loihi2" / "network.npz"))
    assert not any(p.name.endswith(".stream") for p in net.populations)
    assert net.metadata["lowering_config"]["residual_stream"] == "expanded"
    rep = json.loads((out / "report.json").read_text())
    (t,) = rep["targets"]
    assert t["artifact"]["lowering_config"]["name"] == "stream expanded" and t["chips"] == 1
    md = (out / "report.md").read_text()
    assert "### Lowering configurations tried" in md and "| stream expanded (chosen) | fits |" in md
    html = (out / "report.html").read_text()
    assert "Lowering configurations tried: chips against latency" in html
    # without a budget: the default configuration, one lowering
    out2 = tmp_path / "out2"
    assert main(["export", str(digits_ckpt), "-o", str(out2), "--target", "loihi2"]) == 0
    s2 = json.loads((out2 / "loihi2" / "summary.json").read_text())
    assert s2["lowering_config"]["name"] == DEFAULT.name and "configurations" not in s2
    assert s2["latency_steps"] == by["stream built once"]["pipeline_depth"]


@pytest.mark.slow
def test_nothing_fits_exits_1_naming_the_smallest_fit(digits_ckpt, tmp_path, capsys):
    # a Loihi 2 profile with 1 core per chip: the digits model needs more than 8 chips, a Kapoho Point has 8
    import tomllib
    from pathlib import Path
    src = Path(neurodeploy.__file__).resolve().parents[1] / "hardware_profiles" / "loihi2.toml"
    text = src.read_text()
    assert "cores = { value = 122," in text
    prof = tmp_path / "loihi2.toml"
    prof.write_text(text.replace("cores = { value = 122,", "cores = { value = 1,"))
    tomllib.loads(prof.read_text())
    out = tmp_path / "out"
    rc = main(["export", str(digits_ckpt), "-o", str(out), "--target", "loihi2", "--profile", str(prof),
               "--system", "kapoho-point"])
    line = _one_line(capsys)
    assert rc == 1 and not out.exists()
    m = re.fullmatch(r"neurodeploy: error: loihi2: no configuration fits Kapoho Point \(8 chips\): the smallest fit "
                     r"found is '([^']+)' with (\d+) chips \(\d+ cores, [A-Za-z ]+\), latency (\d+) steps"
                     r"; the attention alone needs at least ([\d,]+) product neurons \((\d+) cores, (\d+) chips at an "
                     r"assumed 2,047 per core; (\d+) cores, (\d+) chips? at 4,095\) at full sample rate "
                     r"\(docs/lowering.md\)", line)
    assert m and int(m.group(2)) > 8, line
    # nothing fitted, so the fallbacks were tried too: the smallest named is over all nine
    assert m.group(1) in [c.name for c in CANDIDATES + FALLBACK]


@pytest.mark.parametrize("args, words", [
    (["--max-chips", "0"], "--max-chips must be >= 1, got 0"),
    (["--max-chips", "-3"], "--max-chips must be >= 1, got -3"),
    (["--max-chips", "99999999999"], "--max-chips 99999999999 exceeds the limit of 1,000,000"),
    (["--max-chips", "2.5"], "--max-chips must be an integer, got '2.5'"),
    (["--system", "pohoiki-springs"], "--system 'pohoiki-springs': not a loihi2 system (known: oheo-gulch, "
                                      "kapoho-point, hala-point)"),
])
@pytest.mark.parametrize("command", ["export", "report"])
def test_bad_budgets_exit_2_naming_the_option(digits_ckpt, tmp_path, capsys, args, words, command):
    out = tmp_path / "out"
    argv = ([command, str(digits_ckpt), "-o", str(out)] + (["--target", "loihi2"] if command == "export" else [])
            + args)
    assert main(argv) == 2
    line = _one_line(capsys)
    assert line.startswith("neurodeploy: error: ") and words in line, line
    assert not out.exists()


def test_system_needs_the_loihi2_target(digits_ckpt, tmp_path, capsys):
    assert main(["export", str(digits_ckpt), "-o", str(tmp_path / "o"), "--target", "speck", "--system",
                 "kapoho-point"]) == 2
    assert "--system 'kapoho-point': applies to the loihi2 target" in _one_line(capsys)


def test_full_rate_attention_bound_is_the_documented_figure():
    # docs/lowering.md "Why no micro-step clock": 2 H N dh^2 / p, p = floor(23 / bit_length(N))
    from neurodeploy.lower.attention_graded import full_rate_bound
    assert 4 * full_rate_bound(12, 64, 32) == 2_097_152          # cifar10-4-384: 4 ops x 524,288, p = 3
    assert 2 * full_rate_bound(16, 64, 16) == 349_526            # gesture-2-256
    assert full_rate_bound(4, 16, 16) == 8_192                   # digits: N = 16 (5 bits), p = 4
    assert full_rate_bound(1, 1 << 23, 1) == 2 * (1 << 23)       # a count of 24 bits: one product per word


def test_every_loihi2_report_states_the_full_rate_bound_and_its_resource(digits_ckpt, tmp_path, capsys):
    """Without a budget too: summary.json, report.json, report.md and report.html give the full-rate attention
    bound (digits: 4 heads, 16 tokens, dh 16 -> 2 x 4 x 16 x 256 / floor(23 / 5) = 8,192 product neurons, 5
    cores of 2,047, 1 chip), what it holds for and the resource that sets it, next to what was built (the
    parallel schedule: 32,768)."""
    out = tmp_path / "out"
    assert main(["export", str(digits_ckpt), "-o", str(out), "--target", "loihi2"]) == 0
    b = json.loads((out / "loihi2" / "summary.json").read_text())["attention_full_rate_bound"]
    assert (b["product_neurons"], b["cores"], b["chips"], b["built_product_neurons"]) == (8192, 5, 1, 32768)
    # the per-core figure is the profile's assumption, said with the bound at one neuron slot (8,192 / 4,095)
    assert (b["per_core"], b["per_core_confidence"], b["at_neuron_slots"]) == (
        2047, "assumption", {"per_core": 4095, "cores": 3, "chips": 1})
    assert b["resource"].startswith("product (gating) neurons: each sends one 24-bit graded word per step")
    assert "full sample rate" in b["holds_for"] and "Lava's standard processes" in b["holds_for"]
    (t,) = json.loads((out / "report.json").read_text())["targets"]
    assert t["artifact"]["attention_full_rate_bound"] == b
    words = ("Full-rate bound: the attention alone needs at least **8,192 product neurons (5 cores, 1 chip)** in "
             "any exact schedule at full sample rate built from Lava's standard processes; this network has 32,768. "
             "The resource that sets it: product (gating) neurons")
    assert words in (out / "report.md").read_text()
    assert ("The 2,047 product neurons per core of this bound are an **assumption** (assumption: Lava ProdNeuron"
            in (out / "report.md").read_text())
    assert "Full-rate bound: the attention alone needs at least <strong>8,192 product neurons" in \
        (out / "report.html").read_text()
