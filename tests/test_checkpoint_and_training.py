"""Our checkpoint format, hostile/corrupt files, and the trained digits demo model."""
import os
import pickle

import numpy as np
import pytest
import torch

from neurodeploy import build_model, load_model, save_checkpoint
from neurodeploy.cli import main
from neurodeploy.errors import BadInputError
from neurodeploy.training import digits_split, digits_test_accuracy


def test_our_format_round_trips_with_weights_only(tmp_path):
    torch.manual_seed(0)
    model = build_model("spikingformer-digits").eval()
    path = save_checkpoint(model, tmp_path / "m.pt", {"test_accuracy": 0.5})
    raw = torch.load(path, weights_only=True)  # the documented container is weights_only-safe
    assert raw["format"] == "neurodeploy-checkpoint" and raw["format_version"] == 1
    assert raw["arch"] == "spikingformer-digits" and raw["config"]["embed_dim"] == 64
    loaded = load_model(path)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert loaded.metrics == {"test_accuracy": 0.5}
    assert not (tmp_path / "m.pt.tmp").exists()


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/neurodeploy-pwned",))


def test_hostile_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(BadInputError, match=r"evil\.pt: not a safe checkpoint"):
        load_model(path, arch="spikingformer-digits")
    assert not os.path.exists("/tmp/neurodeploy-pwned")


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    with pytest.raises(BadInputError, match=r"corrupt\.pt: not a readable PyTorch checkpoint"):
        load_model(bad, arch="spikingformer-digits")
    with pytest.raises(BadInputError, match=r"nope\.pt: no such file"):
        load_model(tmp_path / "nope.pt")
    plain = tmp_path / "plain.pt"
    torch.save(build_model("spikingformer-digits").state_dict(), plain)
    with pytest.raises(BadInputError, match="pass --arch"):
        load_model(plain)  # official/bare state_dicts need the architecture name
    assert load_model(plain, arch="spikingformer-digits") is not None
    with pytest.raises(BadInputError, match="unknown architecture 'vit-huge'"):
        load_model(plain, arch="vit-huge")


def test_digits_split_is_fixed():
    x_tr, y_tr, x_te, y_te = digits_split()
    assert x_tr.shape == (1437, 1, 8, 8) and x_te.shape == (360, 1, 8, 8)
    assert torch.bincount(y_te).tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]
    x2 = digits_split()[2]
    assert torch.equal(x_te, x2)


def test_trained_demo_model_reaches_93_percent(trained_digits_model):
    acc = digits_test_accuracy(trained_digits_model)
    assert acc >= 0.93, acc
    assert trained_digits_model.metrics["test_accuracy"] == pytest.approx(acc)


def test_train_cli_reuse_and_errors(trained_digits_checkpoint, capsys, tmp_path):
    assert main(["train", "--reuse", "-o", str(trained_digits_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "reusing" in out
    # CIFAR needs a local data folder; a missing one is a one-line error with exit code 2
    assert main(["train", "--arch", "spikingformer-cifar10-4-384", "-o", str(tmp_path / "c.pt")]) == 2
    assert "needs --data" in capsys.readouterr().err
    assert main(["train", "--arch", "spikingformer-cifar10-4-384", "--data", str(tmp_path / "none"),
                 "-o", str(tmp_path / "c.pt")]) == 2
    assert "data folder not found" in capsys.readouterr().err
    assert not (tmp_path / "c.pt").exists()
    # --reuse checks the architecture of the checkpoint it reuses
    assert main(["train", "--reuse", "--arch", "sew-resnet-digits-add", "-o", str(trained_digits_checkpoint)]) == 2
    assert "holds 'spikingformer-digits', not 'sew-resnet-digits-add'" in capsys.readouterr().err


def test_train_cli_without_a_time_budget_prints_its_summary(capsys, tmp_path):
    # the demo's own command (make demo: train --arch spikingformer-digits -o CKPT), shortened to one epoch:
    # the summary line is printed without a --max-minutes (a None formatted as a number was a traceback)
    out = tmp_path / "d.pt"
    assert main(["train", "--arch", "spikingformer-digits", "--epochs", "1", "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"saved {out}; test accuracy ") and "1 epochs" in line and "--max-minutes" not in line
    assert out.is_file()


@pytest.mark.slow
def test_train_imagenet_layout_from_a_local_folder(tmp_path):
    """``--data`` with an ImageFolder tree (train/, val/): one step of spikingformer-imagenet-8-384 on four
    tiny generated images, saved in our format and loadable."""
    from PIL import Image

    from neurodeploy.training import train

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("n01440764", "n01443537"):
            (tmp_path / "data" / split / cls).mkdir(parents=True)
            img = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
            Image.fromarray(img).save(tmp_path / "data" / split / cls / "a.png")
    out = tmp_path / "imagenet.pt"
    metrics = train("spikingformer-imagenet-8-384", out, data=str(tmp_path / "data"), epochs=1, batch_size=2,
                    progress=False)
    assert metrics["dataset"] == "imagenet" and 0.0 <= metrics["test_accuracy"] <= 1.0
    model = load_model(out)
    assert model.arch == "spikingformer-imagenet-8-384" and model.head.out_features == 1000


def test_batches_made_ahead_keep_their_order_errors_and_early_stop():
    """On a GPU the digits task's batches are rendered one ahead by a worker thread (training._ahead): the
    same items in the same order, the source's error raised in the caller, and a loop left early stops the
    source after at most the one item in flight."""
    import threading

    from neurodeploy.training import _ahead

    made = []

    def source(n, fail_at=None):
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"bad batch {i}")
            made.append((i, threading.current_thread().name))
            yield torch.full((2,), i), torch.tensor([i])

    got = []
    for x, y in _ahead(source(7)):
        assert torch.is_grad_enabled()          # the training step's autograd mode is the caller's
        got.append((int(x[0]), int(y[0])))
    assert got == [(i, i) for i in range(7)]
    assert all(name.startswith("neurodeploy-batches") for _, name in made)

    with pytest.raises(ValueError, match="bad batch 3"):
        list(_ahead(source(7, fail_at=3)))

    made.clear()
    gen = _ahead(source(100))
    for k, _ in enumerate(gen):
        if k == 4:
            break
    gen.close()
    after_close = [i for i, _ in made]
    assert after_close in ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5])     # the next one, if it had started
    import time
    time.sleep(0.2)
    assert [i for i, _ in made] == after_close                      # and nothing after it


def test_evaluation_runs_without_autograd():
    """The test-set evaluation after training builds no autograd graph (memory of a full-size model)."""
    from neurodeploy.training import evaluate

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(torch.is_grad_enabled())
            return x

    assert evaluate(Probe(), [(torch.eye(2), torch.tensor([0, 1]))], torch.device("cpu")) == 1.0
    assert seen == [False] and torch.is_grad_enabled()
