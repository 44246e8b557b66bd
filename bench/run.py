"""Benchmark runner: `make bench` (all) or `make bench BENCH=name` (one module or one benchmark name).

Each module bench/<module>.py exposes `run() -> list[dict]`; every dict has name, value, unit, baseline, ratio,
target and met. A benchmark measures its own baseline in the same run, so ratios compare like with like on
whatever machine runs it. Results merge into bench/results.json (a list, one entry per name) and the README
table between the bench markers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results.json"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
KEYS = ("name", "value", "unit", "baseline", "ratio", "target", "met")


def discover() -> list[str]:
    names = (p.stem for p in (ROOT / "bench").glob("*.py"))
    return sorted(n for n in names if n not in {"__init__", "run"} and not n.startswith("_"))


def load_results() -> list[dict]:
    if RESULTS.exists():
        try:
            return json.loads(RESULTS.read_text())
        except ValueError:
            return []
    return []


def fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return "" if value is None else str(value)


def table(results: list[dict]) -> str:
    lines = [
        "| benchmark | value | unit | baseline | ratio | target | met | measured |",
        "|---|---:|---|---:|---:|---|---|---|",
    ]
    for r in results:
        met = "yes" if r.get("met") else "no"
        lines.append(
            f"| {r['name']} | {fmt(r.get('value'))} | {r.get('unit', '')} | {fmt(r.get('baseline'))} | "
            f"{fmt(r.get('ratio'))} | {r.get('target', '')} | {met} | {r.get('measured_at', '')} |"
        )
    return "\n".join(lines)


def write_readme(results: list[dict]) -> None:
    if not README.exists():
        return
    text = README.read_text()
    if START not in text or END not in text:
        return
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{table(results)}\n{END}{tail}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="a module name (bench/<name>.py) or a benchmark name")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm.settings")
    os.environ.setdefault("WECOM_SIM_ENABLED", "1")  # benches serve the simulator (make bench sets it too)
    import django

    django.setup()

    modules = discover()
    if args.only and args.only in modules:
        modules = [args.only]
    elif args.only:
        # A benchmark name inside a module: run modules whose name is a prefix of it, filter after.
        candidates = [m for m in modules if args.only.startswith(m) or m.startswith(args.only)]
        modules = candidates or modules

    merged = {r["name"]: r for r in load_results()}
    failed = False
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    for module_name in modules:
        print(f"[bench] {module_name} ...", flush=True)
        try:
            module = importlib.import_module(f"bench.{module_name}")
            results = module.run()
        except Exception:
            traceback.print_exc()
            failed = True
            continue
        for result in results:
            if args.only and args.only not in modules and result["name"] != args.only:
                continue
            missing = [k for k in KEYS if k not in result]
            if missing:
                print(f"[bench] {result.get('name')} is missing {missing}", file=sys.stderr)
                failed = True
                continue
            result["measured_at"] = stamp
            merged[result["name"]] = result
            print(
                f"[bench] {result['name']}: {fmt(result['value'])} {result['unit']} "
                f"(baseline {fmt(result['baseline'])}, ratio {fmt(result['ratio'])}, target {result['target']}, "
                f"met={result['met']})",
                flush=True,
            )
    ordered = sorted(merged.values(), key=lambda r: r["name"])
    RESULTS.write_text(json.dumps(ordered, indent=2, ensure_ascii=False) + "\n")
    write_readme(ordered)
    print(f"[bench] wrote {RESULTS.relative_to(ROOT)} and the README table", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
