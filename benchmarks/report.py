"""Render a pytest-benchmark JSON file as the markdown table in benchmarks/README.md.

uv run python -m benchmarks.report benchmarks/results/latest.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(path: Path) -> str:
    data = json.loads(path.read_text())
    rows = [
        "| benchmark | median ms | max ms | raw median ms | ratio | target | budget ms | budget |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        stats = bench["stats"]
        rows.append(
            (
                "| {name} | {median:.1f} | {max:.1f} | {base} | {ratio} | {target} | {budget} "
                "| {status} |"
            ).format(
                name=bench["name"].removeprefix("test_"),
                median=stats["median"] * 1e3,
                max=stats["max"] * 1e3,
                base=info.get("baseline_median_ms", ""),
                ratio=f"{info['ratio']:.2f}x" if "ratio" in info else "",
                target=(
                    f"≤ {info['ratio_target']}x ({info.get('ratio_status', '')})"
                    if "ratio_target" in info
                    else ""
                ),
                budget=info.get("budget_ms", ""),
                status=info.get("budget_status", ""),
            )
        )
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
    return header + "\n\n" + "\n".join(rows)


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/latest.json")))
