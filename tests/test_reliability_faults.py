"""Issue 14, fault injection: outputs are all-or-nothing and nothing is clobbered.

-o at a FIFO, a device node, a symlink and the command's own input; a full disk (tmpfs) during every
command that writes; kill -9 at several points of ``export --target loihi2`` over a good output; two
concurrent exports to one folder.  Every failure: exit 2, exactly one stderr line, no traceback, the
previous output byte-identical and no temporary file left."""
from __future__ import annotations

import hashlib
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import NIR_PAPER
from neurodeploy.cli import main
from neurodeploy.errors import BadInputError
from neurodeploy.fileio import atomic_path, staged_dir, write_text_atomic

REPO = Path(__file__).resolve().parents[1]
LIF = NIR_PAPER / "01_lif" / "lif_norse.nir"
CLI = [sys.executable, "-m", "neurodeploy"]


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("neurodeploy: error: ") and "Traceback" not in err, err
    return lines[0]


def snapshot(folder: Path) -> dict:
    """Relative path -> sha256 of every file under ``folder`` (and its sibling entries, to see leftovers)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def run_cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=600, **kw)


@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    """An untrained digits checkpoint (what is written does not depend on training)."""
    import torch

    from neurodeploy.checkpoint import save_checkpoint
    from neurodeploy.models.registry import build_model

    torch.manual_seed(0)
    return save_checkpoint(build_model("spikingformer-digits").eval(), tmp_path_factory.mktemp("ck") / "digits.pt")


# -- -o at special files and at the input ---------------------------------------------------------------

def _check_o(target: Path, capsys) -> str:
    code = main(["check", str(LIF), "--no-dynamic", "-o", str(target)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    return one_error_line(err)


def test_o_refuses_a_fifo(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert "is a FIFO" in _check_o(fifo, capsys)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.listdir(tmp_path) == ["fifo"]


def test_o_refuses_a_device_node(tmp_path, capsys):
    if os.geteuid() != 0:
        print("skipped: creating a device node needs root")
        pytest.skip("mknod needs root")
    dev = tmp_path / "null"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    assert "is a character device" in _check_o(dev, capsys)
    assert stat.S_ISCHR(os.lstat(dev).st_mode) and os.listdir(tmp_path) == ["null"]


def test_o_refuses_a_symlink(tmp_path, capsys):
    real = tmp_path / "real.txt"
    real.write_text("keep")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    assert "is a symbolic link" in _check_o(link, capsys)
    assert link.is_symlink() and real.read_text() == "keep" and sorted(os.listdir(tmp_path)) == ["link.txt", "real.txt"]


def test_o_refuses_the_input_itself(tmp_path, capsys):
    copy = tmp_path / "copy.nir"
    copy.write_bytes(LIF.read_bytes())
    assert main(["check", str(copy), "--no-dynamic", "-o", str(copy)]) == 2
    assert "is an input of this command" in one_error_line(capsys.readouterr().err)
    assert copy.read_bytes() == LIF.read_bytes() and os.listdir(tmp_path) == ["copy.nir"]
    # a hard link to the input is the same file
    os.link(copy, tmp_path / "hard.nir")
    assert main(["check", str(copy), "--no-dynamic", "-o", str(tmp_path / "hard.nir")]) == 2
    assert "is an input" in one_error_line(capsys.readouterr().err)


def test_o_dash_and_dev_stdout_write_to_stdout(capsys):
    for target in ("-", "/dev/stdout"):
        assert main(["check", str(LIF), "--no-dynamic", "--format", "json", "-o", target]) == 1  # not pure
        out, err = capsys.readouterr()
        assert out.startswith("{") and out.rstrip().endswith("}") and '"schema": "neurodeploy.purity"' in out
        assert err == ""
    assert os.path.exists("/dev/stdout")  # not replaced by a file


def test_export_o_at_a_file_symlink_or_device(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    link = tmp_path / "linkdir"
    (tmp_path / "realdir").mkdir()
    link.symlink_to(tmp_path / "realdir")
    for out, needle in ((f, "exists and is not a folder"), (link, "is a symbolic link")):
        assert main(["export", str(LIF), "-o", str(out)]) == 2
        assert needle in one_error_line(capsys.readouterr().err)
    assert f.read_text() == "x" and os.listdir(tmp_path / "realdir") == []


def test_name_over_name_max_leaves_no_folder(tmp_path, capsys):
    long = tmp_path / "new" / ("n" * 300)
    assert main(["export", str(LIF), "-o", str(long)]) == 2
    assert "longer than 255 bytes" in one_error_line(capsys.readouterr().err)
    assert os.listdir(tmp_path) == []
    assert main(["check", str(LIF), "--no-dynamic", "-o", str(tmp_path / "a" / ("r" * 300 + ".txt"))]) == 2
    assert "longer than 255 bytes" in one_error_line(capsys.readouterr().err)
    assert os.listdir(tmp_path) == []


def test_atomic_path_removes_temp_and_created_folders_on_error(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    write_text_atomic(target, "done")
    assert target.read_text() == "done" and os.listdir(target.parent) == ["out.txt"]


# -- folder outputs: staged, locked, swapped in whole ----------------------------------------------------

def test_staged_dir_keeps_old_output_on_failure_and_swaps_on_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.nir").write_text("old")
    (out / "notes.txt").write_text("user file")
    with pytest.raises(ValueError):
        with staged_dir(out, owned=("model.nir", "loihi2")) as stage:
            (stage / "model.nir").write_text("new")
            raise ValueError("lowering failed")
    assert snapshot(out) == {"model.nir": hashlib.sha256(b"old").hexdigest(),
                             "notes.txt": hashlib.sha256(b"user file").hexdigest()}
    assert leftovers(tmp_path, "out") == []
    with staged_dir(out, owned=("model.nir", "loihi2")) as stage:
        (stage / "model.nir").write_text("new")
        (stage / "loihi2").mkdir()
        (stage / "loihi2" / "net.npz").write_text("n")
    assert (out / "model.nir").read_text() == "new" and (out / "notes.txt").read_text() == "user file"
    assert (out / "loihi2" / "net.npz").read_text() == "n" and leftovers(tmp_path, "out") == []


def test_concurrent_run_on_a_locked_folder_fails_at_once(tmp_path, capsys):
    out = tmp_path / "out"
    with staged_dir(out) as stage:  # this process holds OUT's lock
        (stage / "model.nir").write_text("mine")
        t0 = time.perf_counter()
        assert main(["export", str(LIF), "-o", str(out)]) == 2
        assert time.perf_counter() - t0 < 30
        assert "another neurodeploy run is writing this folder" in one_error_line(capsys.readouterr().err)
    assert os.listdir(out) == ["model.nir"] and (out / "model.nir").read_text() == "mine"
    assert leftovers(tmp_path, "out") == []


def test_two_concurrent_exports_leave_one_complete_model(tmp_path, small_ckpt):
    out = tmp_path / "out"
    procs = [subprocess.Popen([*CLI, "export", str(src), "-o", str(out)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for src in (small_ckpt, LIF)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    ok = [code == 0 for code, _ in results]
    assert any(ok), results
    for code, err in results:
        if code:
            assert code == 2 and "another neurodeploy run is writing this folder" in one_error_line(err)
    assert os.listdir(out) == ["model.nir"] and leftovers(tmp_path, "out") == []
    from neurodeploy.graph import read_graph

    nodes = len(read_graph(out / "model.nir").nodes)
    assert nodes in ({4} if ok == [False, True] else {29} if ok == [True, False] else {4, 29})


def test_recovery_after_a_kill_between_the_two_renames(tmp_path):
    """Where renameat2 cannot exchange, the swap is two renames: a kill between them leaves OUT missing and
    the old folder beside it; the next run puts it back before it works."""
    out = tmp_path / "out"
    old = tmp_path / ".out.old-12345"
    old.mkdir()
    (old / "model.nir").write_text("old")
    (tmp_path / ".out.staging-abc").mkdir()
    with pytest.raises(KeyError):
        with staged_dir(out):
            assert (out / "model.nir").read_text() == "old"
            raise KeyError("fail")
    assert (out / "model.nir").read_text() == "old" and leftovers(tmp_path, "out") == []


def same_output(a: dict, b: dict) -> bool:
    """Two export folders hold the same model: the same files, byte-identical model.nir and netx file
    (report/summary files carry timings)."""
    return set(a) == set(b) and all(a[k] == b[k] for k in ("model.nir", "loihi2/network.net") if k in a)


@pytest.mark.slow
def test_kill_9_during_export_target_loihi2_keeps_the_old_output(tmp_path, small_ckpt):
    out = tmp_path / "out"
    t0 = time.perf_counter()
    first = run_cli("export", small_ckpt, "-o", out, "--target", "loihi2")
    duration = time.perf_counter() - t0
    assert first.returncode == 0, first.stderr
    digits = snapshot(out)
    assert {"model.nir", "loihi2/network.npz", "loihi2/summary.json", "report.json"} <= set(digits)
    lif = run_cli("export", LIF, "-o", out, "--target", "loihi2")  # a different model: a mix would show
    assert lif.returncode == 0, lif.stderr
    old = snapshot(out)
    assert not same_output(old, digits)
    rng = random.Random(14)
    delays = sorted([0.5, duration * 0.5, duration * 0.8, duration * 0.95] + [rng.uniform(1, duration) for _ in range(2)])
    for delay in delays:
        before = snapshot(out)
        p = subprocess.Popen([*CLI, "export", str(small_ckpt), "-o", str(out), "--target", "loihi2"],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        after = snapshot(out)
        # the complete old folder, untouched, or (the kill came after the swap) the complete new one
        assert after == before or same_output(after, digits), f"mixed folder after a kill at {delay:.1f} s"
    # the next run removes a killed run's leftovers (staging folder, lock file)
    last = run_cli("export", LIF, "-o", out, "--target", "loihi2")
    assert last.returncode == 0, last.stderr
    assert same_output(snapshot(out), old) and leftovers(tmp_path, "out") == []


# -- full disk --------------------------------------------------------------------------------------------

@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MiB tmpfs (root only; skipped with a printed reason otherwise)."""
    if os.geteuid() != 0:
        print("skipped: mounting a tmpfs needs root")
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"skipped: cannot mount a tmpfs ({r.stderr.strip()})")
        pytest.skip("cannot mount a tmpfs")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave: int) -> None:
    """Fill the disk up to ``leave`` free bytes."""
    free = os.statvfs(mnt).f_bavail * os.statvfs(mnt).f_frsize
    with open(mnt / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def test_full_disk_export_keeps_old_output(tiny_disk, capsys):
    out = tiny_disk / "out"
    assert main(["export", str(LIF), "-o", str(out)]) == 0
    capsys.readouterr()
    good = snapshot(out)
    fill(tiny_disk, 4096)
    assert main(["export", str(NIR_PAPER / "02_cnn" / "cnn_sinabs.nir"), "-o", str(out)]) == 2
    assert "no space left on device" in one_error_line(capsys.readouterr().err)
    assert snapshot(out) == good and sorted(os.listdir(tiny_disk)) == ["filler", "out"]


def test_full_disk_export_target_loihi2(tiny_disk, small_ckpt):
    fill(tiny_disk, 700 * 1024)
    r = run_cli("export", small_ckpt, "-o", tiny_disk / "out", "--target", "loihi2")
    assert r.returncode == 2 and "no space left on device" in one_error_line(r.stderr)
    assert sorted(os.listdir(tiny_disk)) == ["filler"]


def test_full_disk_check_and_report_o(tiny_disk, capsys):
    fill(tiny_disk, 0)
    (tiny_disk / "r.txt").parent  # noqa: B018 - the target does not exist yet
    assert main(["check", str(LIF), "--no-dynamic", "-o", str(tiny_disk / "r.txt")]) == 2
    assert "no space left on device" in one_error_line(capsys.readouterr().err)
    assert main(["report", str(LIF), "--format", "json", "-o", str(tiny_disk / "r.json")]) == 2
    assert "no space left on device" in one_error_line(capsys.readouterr().err)
    assert sorted(os.listdir(tiny_disk)) == ["filler"]


def test_full_disk_train_checkpoint_write(tiny_disk, small_ckpt):
    """``train`` saves through save_checkpoint (training itself is minutes on a loaded machine, so the
    write is driven directly): one BadInputError, no temp file."""
    from neurodeploy.checkpoint import load_model, save_checkpoint

    model = load_model(small_ckpt)
    fill(tiny_disk, 64 * 1024)
    with pytest.raises(BadInputError, match="no space left on device"):
        save_checkpoint(model, tiny_disk / "ck.pt")
    assert sorted(os.listdir(tiny_disk)) == ["filler"]


def test_disk_full_error_is_bad_input_in_the_api(tiny_disk):
    fill(tiny_disk, 0)
    with pytest.raises(BadInputError, match="no space left on device"):
        write_text_atomic(tiny_disk / "x.txt", "y" * 100_000)
    assert sorted(os.listdir(tiny_disk)) == ["filler"]


def test_input_name_over_name_max_is_one_line(tmp_path, capsys):
    for cmd in (["check"], ["report"], ["export", "-o", str(tmp_path / "o")], ["simulate"]):
        assert main([cmd[0], str(tmp_path / ("a" * 300 + ".nir")), *cmd[1:]]) == 2
        assert "File name too long" in one_error_line(capsys.readouterr().err)
    assert os.listdir(tmp_path) == []


# -- issue 26: refused before any work ---------------------------------------------------------------------

def test_simulate_backend_lava_without_lava_is_refused_before_any_work(monkeypatch, capsys):
    """Lava missing (the import check made to say so): one line, exit 2, before the model is read or lowered
    and before any progress bar."""
    import neurodeploy.commands.simulate as sim
    import neurodeploy.lava_compat as lc

    monkeypatch.setattr(lc, "lava_installed", lambda: False)

    def no_work(*a, **kw):
        raise AssertionError("the model was read and lowered before Lava was looked for")

    monkeypatch.setattr(sim, "load_artifact", no_work)
    assert main(["simulate", str(LIF), "--backend", "lava", "--data", str(LIF)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Lava is not installed" in one_error_line(err)
    with pytest.raises(Exception, match="Lava is not installed"):
        lc.ensure_lava()


def test_no_command_is_one_line_on_stderr():
    r = run_cli()
    assert r.returncode == 2 and r.stdout == ""
    assert "no command given; one of check, export, report, simulate, targets, train" in one_error_line(r.stderr)


# -- the new options of issues 24, 25 and 28 (docs/reliability.md, "Rules for the new options") -------------

@pytest.mark.parametrize("argv, words", [
    (["train", "--arch", "spikformr-cifar10-4-384"], "--arch: unknown architecture 'spikformr-cifar10-4-384'; "
                                                     "close matches: spikformer-cifar10-4-384"),
    (["check", "x.pt", "--arch", "qkformer-cifar"], "--arch: unknown architecture 'qkformer-cifar'; close "
                                                    "matches: qkformer-cifar10-4-384"),
    (["export", "x.pt", "--arch", "sdt-cifar10"], "--arch: unknown architecture 'sdt-cifar10'; close matches: "
                                                  "sdt-cifar10-2-512"),
    (["train", "--arch", "sdt-digits", "--max-minutes", "0"], "--max-minutes must be > 0, got 0"),
    (["train", "--arch", "sdt-digits", "--max-minutes", "-3"], "--max-minutes must be > 0, got -3"),
    (["train", "--arch", "sdt-digits", "--max-minutes", "inf"], "--max-minutes must be a finite number"),
    (["train", "--arch", "sdt-digits", "--max-minutes", "20000"], "--max-minutes 20000 exceeds the limit"),
    (["train", "--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["train", "--batch-size", "-8"], "--batch-size must be >= 1, got -8"),
    (["report", "x.pt", "--target", "loihi2", "--system", "pohoiki"], "--system 'pohoiki': not a loihi2 system"),
    (["export", "x.pt", "--target", "loihi2", "--max-chips", "1e3"], "--max-chips must be an integer, got '1e3'"),
    (["export", "x.pt", "--target", "loihi2", "--attention-schedule", "diagonal"],
     "--attention-schedule: invalid choice: 'diagonal'"),
])
def test_new_option_values_are_one_line_exit_2_before_any_work(tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.pt").write_bytes(b"not read: the option is refused first")
    assert main(argv + ["-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("neurodeploy: error: ") and words in err[0], err
    assert not (tmp_path / "out").exists()


def test_architecture_names_match_ignoring_case_and_separators():
    from neurodeploy.commands.common import arch_name

    assert arch_name()("Spikingformer_Cifar10-4-384") == "spikingformer-cifar10-4-384"
    assert arch_name()("QKFormer digits") == "qkformer-digits"
