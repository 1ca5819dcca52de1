"""Render a pytest-benchmark JSON file as the tables in benchmarks/README.md: every
measurement against its raw-driver baseline, then the verdicts.

uv run python -m benchmarks.report benchmarks/results/latest.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ._verdicts import from_json, markdown


def measurements(benchmarks: list[dict[str, Any]]) -> list[str]:
    rows = [
        "| benchmark | median ms | max ms | raw driver median ms | ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for bench in benchmarks:
        info = bench.get("extra_info", {})
        stats = bench["stats"]
        rows.append(
            "| {name} | {median:,.1f} | {max:,.1f} | {base} | {ratio} |".format(
                name=bench["name"].removeprefix("test_"),
                median=stats["median"] * 1e3,
                max=stats["max"] * 1e3,
                base=f"{info['baseline_median_ms']:,.1f}" if "baseline_median_ms" in info else "",
                ratio=f"{info['ratio']:.2f}x" if "ratio" in info else "",
            )
        )
    return rows


def report(path: Path) -> str:
    data = json.loads(path.read_text())
    machine = data.get("machine_info", {})
    servers = sorted(
        {b.get("extra_info", {}).get("server", "") for b in data["benchmarks"]} - {"", "in-process"}
    )
    header = (
        f"Machine: {machine.get('cpu', {}).get('brand_raw', '?')}, "
        f"{machine.get('cpu', {}).get('count', '?')} cores, "
        f"Python {machine.get('python_version', '?')}; "
        f"server: {', '.join(servers)}; {data.get('datetime', '')[:10]}"
    )
    verdicts = markdown(from_json(data["benchmarks"]))
    return "\n".join([header, "", *measurements(data["benchmarks"]), "", *verdicts])


if __name__ == "__main__":
    print(report(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/latest.json")))
