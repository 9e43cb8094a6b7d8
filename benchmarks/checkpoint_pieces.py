"""Carry a trained checkpoint back from a lent GPU machine in pieces, and put it together here.

The device tool returns at most 8 files of 16 MiB each (64 MiB in all), and a full-size ImageNet checkpoint
(16.9 M parameters, float32) is 64.5 MiB.  ``pack`` drops the training state (optimizer moments), deflates the
rest losslessly with zlib and writes pieces of 15 MiB with a manifest of their SHA-256; ``unpack`` checks the
pieces, inflates them and writes the checkpoint, which then loads with ``weights_only=True`` as any other.
Written by hand because no library splits a file to a transfer limit (a few lines of zlib and hashlib).

    python benchmarks/checkpoint_pieces.py pack CKPT DIR        # on the GPU machine, DIR = $OUT
    python benchmarks/checkpoint_pieces.py unpack DIR CKPT      # here
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
import zlib
from pathlib import Path

import torch

PIECE = 15 * 2 ** 20


def pack(ckpt: Path, out: Path) -> dict:
    obj = torch.load(ckpt, map_location="cpu", weights_only=True)
    obj.pop("train_state", None)
    buf = io.BytesIO()
    torch.save(obj, buf)
    raw = buf.getvalue()
    data = zlib.compress(raw, 6)
    out.mkdir(parents=True, exist_ok=True)
    pieces = []
    for i in range(0, len(data), PIECE):
        name = f"ckpt.z.{i // PIECE:02d}"
        (out / name).write_bytes(data[i:i + PIECE])
        pieces.append({"name": name, "sha256": hashlib.sha256(data[i:i + PIECE]).hexdigest()})
    manifest = {"arch": obj.get("arch"), "metrics": obj.get("metrics"), "bytes": len(raw),
                "sha256": hashlib.sha256(raw).hexdigest(), "pieces": pieces}
    (out / "ckpt.manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def unpack(src: Path, ckpt: Path) -> dict:
    manifest = json.loads((src / "ckpt.manifest.json").read_text())
    parts = []
    for p in manifest["pieces"]:
        b = (src / p["name"]).read_bytes()
        if hashlib.sha256(b).hexdigest() != p["sha256"]:
            raise SystemExit(f"{src / p['name']}: SHA-256 differs from the manifest")
        parts.append(b)
    raw = zlib.decompress(b"".join(parts))
    if hashlib.sha256(raw).hexdigest() != manifest["sha256"]:
        raise SystemExit(f"{src}: the inflated checkpoint's SHA-256 differs from the manifest")
    torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    ckpt.write_bytes(raw)
    return manifest


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("pack", "unpack"):
        raise SystemExit(__doc__)
    fn = pack if sys.argv[1] == "pack" else unpack
    m = fn(Path(sys.argv[2]), Path(sys.argv[3]))
    print(json.dumps({k: m[k] for k in ("arch", "bytes", "metrics")} | {"pieces": len(m["pieces"])}))
