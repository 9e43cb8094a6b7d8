"""``neurodeploy targets [--profile FILE ...] [--json]``: list the hardware profiles."""
from __future__ import annotations

import json
import sys

from ..profiles import builtin_names, load_profile, load_profile_file


def add_parser(subparsers):
    p = subparsers.add_parser("targets", help="list hardware profiles (chip limits, systems, energy figures)")
    p.add_argument("--profile", action="append", default=[], metavar="FILE",
                   help="also load (and validate) this profile TOML; may be repeated")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)
    return p


def _summary(prof) -> dict:
    core = {k: q["value"] for k, q in prof.data["core"].items()}
    return {
        "name": prof.name,
        "title": prof.title,
        "path": prof.path,
        "cores_per_chip": prof.cores_per_chip,
        "core_limits": core,
        "systems": [{"name": n, "chips": c} for n, c in prof.systems],
        "attention": prof.attention["supported"],
        "weight_bits": prof.value("precision", "weight_bits"),
        "energy": {k: q["value"] for k, q in prof.data["energy"].items()},
    }


def run(args) -> int:
    profiles = [load_profile(n) for n in builtin_names()] + [load_profile_file(f) for f in args.profile]
    rows = [_summary(p) for p in profiles]
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    out = [f"{'target':<12} {'title':<28} {'cores/chip':>10} {'w bits':>6} {'attention':>9}  systems"]
    for r in rows:
        systems = ", ".join(f"{s['name']} ({s['chips']})" for s in r["systems"])
        out.append(f"{r['name']:<12} {r['title'][:28]:<28} {r['cores_per_chip']:>10} {r['weight_bits']!s:>6} "
                   f"{'yes' if r['attention'] else 'no':>9}  {systems}")
    sys.stdout.write("\n".join(out) + "\n")
    return 0
