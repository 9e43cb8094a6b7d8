"""``torchrun --nproc-per-node 2 -m neurodeploy simulate`` (gloo, CPU) shards the samples over two processes
and gathers exactly what one process computes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from neurodeploy.cli import main


@pytest.mark.slow
def test_two_processes_equal_one(trained_digits_checkpoint, capsys):
    args = ["simulate", str(trained_digits_checkpoint), "--limit", "64", "--batch", "16", "--layers", "--json"]
    assert main(args) == 0
    one = json.loads(capsys.readouterr().out)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "neurodeploy", *args], capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert one["processes"] == 1 and two["processes"] == 2
    for key in ("samples", "predictions", "float_predictions", "prediction_agreement", "float_accuracy",
                "loihi2_accuracy", "layer_spike_agreement"):
        assert two[key] == one[key], key
    assert len(two["predictions"]) == 64
