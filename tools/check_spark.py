"""Check that Spark reads a flat export (``eventlab export DIR --flat``) as DuckDB does.

Reads the Hive-partitioned Parquet dataset as docs/frames.md says to, with the partition
columns in the types the export wrote (not guessed from folder names, where an event type
``404`` would be taken for a number): Spark with ``mergeSchema`` and partition type inference
off, ``day`` cast to a date; DuckDB with ``read_parquet('DIR/**/*.parquet', hive_partitioning
= true, union_by_name = true, hive_types = {...})``. Then it compares: the row count, the columns
and their types, the partition columns (against the types ``_eventlab_flat.json`` records),
the rows per partition, the sum of every decimal column, revenue (``payload.unit_price *
payload.quantity``) by partition, the range of every timestamp (UTC, microseconds), and every
value of every row (ordered by position; timestamps compared as microseconds since the epoch).
Exits 1 on any disagreement or when either engine cannot read the dataset, 2 on a wrong
command line.

Needs PySpark (and Java 17+), DuckDB and pyarrow in the environment that runs it, e.g.::

    uv venv /tmp/spark-venv && uv pip install --python /tmp/spark-venv pyspark duckdb pyarrow
    /tmp/spark-venv/bin/python tools/check_spark.py exports/orders

PySpark is imported inside a function and used as ``Any``, so that the project's ruff and
mypy (where PySpark is not installed) check this file as they check the others.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

MANIFEST = "_eventlab_flat.json"
PARTITION_COLUMNS = ("event_type", "day", "aggregate_type")
PRICE, QUANTITY = "payload.unit_price", "payload.quantity"
SHOWN = 5
"""Differing values shown per column."""

_DUCKDB_TYPES = {
    "BIGINT": "bigint",
    "INTEGER": "int",
    "SMALLINT": "smallint",
    "TINYINT": "tinyint",
    "DOUBLE": "double",
    "FLOAT": "float",
    "BOOLEAN": "boolean",
    "VARCHAR": "string",
    "BLOB": "binary",
    "DATE": "date",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
    "TIMESTAMP": "timestamp_ntz",
    "NULL": "void",
    '"NULL"': "void",
}
_ARROW_TYPES = {
    "int64": "bigint",
    "int32": "int",
    "double": "double",
    "bool": "boolean",
    "string": "string",
    "large_string": "string",
    "binary": "binary",
    "null": "void",
    "date32[day]": "date",
    "timestamp[us, tz=UTC]": "timestamp",
}


class Report:
    """The checks' lines, and whether any disagreed."""

    def __init__(self) -> None:
        self.failed = 0

    def ok(self, what: str, detail: str = "") -> None:
        print(f"OK    {what}" + (f": {detail}" if detail else ""))

    def diff(self, what: str, detail: str) -> None:
        self.failed += 1
        print(f"DIFF  {what}: {detail}")

    def same(self, what: str, spark: object, duck: object, shown: str | None = None) -> bool:
        if _close(spark, duck):
            self.ok(what, shown if shown is not None else _short(spark))
            return True
        if isinstance(spark, list) and isinstance(duck, list) and len(spark) + len(duck) > 2:
            only_spark = [row for row in spark if not any(_close(row, d) for d in duck)]
            only_duck = [row for row in duck if not any(_close(s, row) for s in spark)]
            self.diff(what, f"only Spark {_short(only_spark)}, only DuckDB {_short(only_duck)}")
        else:
            self.diff(what, f"Spark {_short(spark)} != DuckDB {_short(duck)}")
        return False


def _short(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def duckdb_type(name: str) -> str:
    """A DuckDB type in Spark's spelling (``DECIMAL(18,2)`` -> ``decimal(18,2)``)."""
    if name.endswith("[]"):
        return f"array<{duckdb_type(name[:-2])}>"
    found = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", name)
    if found:
        return f"decimal({found[1]},{found[2]})"
    return _DUCKDB_TYPES.get(name, name.lower())


def arrow_type(name: str) -> str:
    """A type as ``_eventlab_flat.json`` records it (Arrow's spelling), in Spark's."""
    found = re.fullmatch(r"list<\w+: (.*)>", name)
    if found:
        return f"array<{arrow_type(found[1])}>"
    found = re.fullmatch(r"decimal128\((\d+), (\d+)\)", name)
    if found:
        return f"decimal({found[1]},{found[2]})"
    return _ARROW_TYPES.get(name, name)


def normal(value: Any) -> Any:
    """A value as plain Python, the same from either engine (Spark's Rows, bytearrays)."""
    if hasattr(value, "asDict"):
        value = value.asDict(recursive=True)
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normal(v) for v in value]
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def spark_name(column: str) -> str:
    return "`" + column.replace("`", "``") + "`"


def duck_name(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def value_expression(column: str, kind: str, quote: Callable[[str], str], engine: str) -> str:
    """The column as it is compared: times as microseconds since the epoch (UTC). ``engine``:
    ``spark``, ``duckdb`` (1.3 and later: ``lambda x: ...``) or ``duckdb-arrow`` (``x -> ...``)."""
    name = quote(column)
    micros = "unix_micros({})" if engine == "spark" else "epoch_us({})"
    if kind == "timestamp_ntz" and engine == "spark":
        micros = "unix_micros(CAST({} AS TIMESTAMP))"
    if kind in ("timestamp", "timestamp_ntz"):
        return micros.format(name)
    if kind in ("array<timestamp>", "array<timestamp_ntz>"):
        each = {
            "spark": "transform({}, x -> {})",
            "duckdb": "list_transform({}, lambda x: {})",
            "duckdb-arrow": "list_transform({}, x -> {})",
        }[engine]
        return each.format(name, micros.format("x"))
    return name


def start_spark(master: str, conf: dict[str, str]) -> Any:
    """A local Spark session in UTC, quiet. PySpark is untyped here (``Any``)."""
    sql: Any = importlib.import_module("pyspark.sql")
    builder = (
        sql.SparkSession.builder.master(master)
        .appName("eventlab-check-spark")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.shuffle.partitions", "2")
        # Partition values as the text the export wrote ("404" is an event type, not a number).
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def first_line(exc: BaseException) -> str:
    """What went wrong, in a line: Spark's error classes (``[CANNOT_MERGE_SCHEMAS] ...``) from
    the Java trace when there is one, else the message's first line."""
    text = str(exc).strip().splitlines()
    classes = [
        re.sub(r"^.*?(\[[A-Z_.]+\])", r"\1", line).strip()
        for line in text
        if re.search(r"\[[A-Z][A-Z_.]{4,}\]", line) and not line.lstrip().startswith("at ")
    ]
    shown = " <- ".join(dict.fromkeys(classes)) if classes else (text[0] if text else "")
    return f"{type(exc).__name__}: {shown}"[:1000]


class Engines:
    """The dataset as Spark and DuckDB read it, and the same query put to both."""

    def __init__(self, spark: Any, duck: Any, lambdas: str) -> None:
        self.spark = spark
        self.duck = duck
        self.lambdas = lambdas
        """``duckdb`` or ``duckdb-arrow``: :func:`value_expression`'s spelling for this DuckDB."""

    def both(self, spark_sql: str, duck_sql: str) -> tuple[list[tuple[Any, ...]], Any]:
        spark_rows = [tuple(normal(v) for v in row) for row in self.spark.sql(spark_sql).collect()]
        duck_rows = [tuple(normal(v) for v in row) for row in self.duck.sql(duck_sql).fetchall()]
        return spark_rows, duck_rows


def compare(directory: Path, master: str, conf: dict[str, str], rows: bool) -> int:
    duckdb: Any = importlib.import_module("duckdb")
    report = Report()
    began = time.perf_counter()
    manifest: dict[str, Any] = {}
    if (directory / MANIFEST).is_file():
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    else:
        print(f"note  no {MANIFEST} in {directory}: partition types are not checked")
    recorded: dict[str, str] = manifest.get("schema") or {}
    partitions: list[str] = (manifest.get("selection") or {}).get(
        "partition_by", [c for c in PARTITION_COLUMNS if any(directory.glob(f"{c}=*"))]
    )

    duck = duckdb.connect()
    glob = str(directory / "**" / "*.parquet").replace("'", "''")
    try:
        hive_types = ", ".join(
            f"'{name}': '{'DATE' if name == 'day' else 'VARCHAR'}'" for name in partitions
        )
        duck.sql(
            "CREATE VIEW flat AS SELECT * FROM read_parquet("
            f"'{glob}', hive_partitioning = true, union_by_name = true"
            f"{f', hive_types = {{{hive_types}}}' if hive_types else ''})"
        )
        duck_types = {
            name: duckdb_type(kind) for name, kind, *_ in duck.sql("DESCRIBE flat").fetchall()
        }
    except Exception as exc:
        report.diff("DuckDB reads the dataset", first_line(exc))
        return 1

    spark = start_spark(master, conf)
    started = time.perf_counter()
    print(
        f"Spark {spark.version} (pyspark {importlib.import_module('pyspark').__version__}), "
        f"DuckDB {duckdb.__version__}; Spark started in {started - began:.1f} s"
    )
    try:
        frame = spark.read.option("mergeSchema", "true").parquet(str(directory))
        if "day" in partitions:
            frame = frame.withColumn("day", frame["day"].cast("date"))
        frame.createOrReplaceTempView("flat")
        spark_types = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
        spark_count = frame.count()
    except Exception as exc:
        report.diff("Spark reads the dataset", first_line(exc))
        spark.stop()
        return 1
    version = tuple(int(p) for p in re.findall(r"\d+", duckdb.__version__)[:2])
    engines = Engines(spark, duck, "duckdb" if version >= (1, 3) else "duckdb-arrow")
    try:
        _checks(report, engines, spark_types, duck_types, spark_count, recorded, partitions, rows)
    finally:
        spark.stop()
    print(
        f"{'FAILED' if report.failed else 'PASSED'}: {report.failed} disagreement(s); "
        f"{time.perf_counter() - began:.1f} s in all"
    )
    return 1 if report.failed else 0


def _checks(
    report: Report,
    engines: Engines,
    spark_types: dict[str, str],
    duck_types: dict[str, str],
    spark_count: int,
    recorded: dict[str, str],
    partitions: list[str],
    rows: bool,
) -> None:
    ((duck_count,),) = engines.duck.sql("SELECT count(*) FROM flat").fetchall()
    report.same("row count", spark_count, duck_count)

    only_spark = sorted(set(spark_types) - set(duck_types))
    only_duck = sorted(set(duck_types) - set(spark_types))
    if only_spark or only_duck:
        report.diff("columns", f"only Spark: {only_spark}, only DuckDB: {only_duck}")
    else:
        report.ok("columns", f"{len(spark_types)} in both")
    common = [c for c in duck_types if c in spark_types]
    typed = [c for c in common if spark_types[c] != duck_types[c]]
    for column in typed:
        report.diff(
            f"type of {column}", f"Spark {spark_types[column]}, DuckDB {duck_types[column]}"
        )
    if not typed:
        report.ok("column types", ", ".join(sorted({spark_types[c] for c in common})))

    for column in partitions:
        expected = arrow_type(recorded[column]) if column in recorded else None
        kinds = f"Spark {spark_types.get(column)}, DuckDB {duck_types.get(column)}"
        if expected is None:
            report.ok(f"partition column {column}", kinds + " (no recorded type)")
        elif spark_types.get(column) == duck_types.get(column) == expected:
            report.ok(f"partition column {column}", f"{expected} in both")
        else:
            report.diff(f"partition column {column}", f"{kinds}; the export wrote {expected}")

    if partitions:
        spark_keys = ", ".join(f"CAST({spark_name(c)} AS STRING)" for c in partitions)
        duck_keys = ", ".join(f"CAST({duck_name(c)} AS VARCHAR)" for c in partitions)
        spark_rows, duck_rows = engines.both(
            f"SELECT {spark_keys}, count(*) FROM flat GROUP BY ALL",
            f"SELECT {duck_keys}, count(*) FROM flat GROUP BY ALL",
        )
        s, d = Counter(dict(_pairs(spark_rows))), Counter(dict(_pairs(duck_rows)))
        if s == d:
            report.ok("rows per partition", f"{len(s)} partitions")
        else:
            report.diff(
                "rows per partition",
                f"only Spark {_short(sorted((s - d).items()))}, "
                f"only DuckDB {_short(sorted((d - s).items()))}",
            )

    for column in common:
        if spark_types[column].startswith("decimal") and duck_types[column].startswith("decimal"):
            _one(report, engines, f"sum of {column}", "SUM({}) FROM flat", column)

    if PRICE in common and QUANTITY in common:
        _revenue(report, engines, partitions)

    for column in common:
        if spark_types[column] in ("timestamp", "timestamp_ntz"):
            s_expr = value_expression(column, spark_types[column], spark_name, "spark")
            d_expr = value_expression(column, duck_types[column], duck_name, engines.lambdas)
            _guarded(
                report,
                f"min, max of {column} (µs since epoch)",
                engines,
                f"SELECT min({s_expr}), max({s_expr}) FROM flat",
                f"SELECT min({d_expr}), max({d_expr}) FROM flat",
            )

    if rows:
        _rows(report, engines, common, spark_types, duck_types)


def _pairs(rows: Iterable[tuple[Any, ...]]) -> Iterable[tuple[tuple[Any, ...], int]]:
    for row in rows:
        yield tuple(row[:-1]), int(row[-1])


def _guarded(report: Report, what: str, engines: Engines, spark_sql: str, duck_sql: str) -> None:
    """One query put to both engines; their rows compared in any order."""
    try:
        spark_rows, duck_rows = engines.both(spark_sql, duck_sql)
    except Exception as exc:
        report.diff(what, first_line(exc))
        return
    report.same(what, sorted(spark_rows, key=repr), sorted(duck_rows, key=repr))


def _one(report: Report, engines: Engines, what: str, template: str, column: str) -> None:
    _guarded(
        report,
        what,
        engines,
        "SELECT " + template.format(spark_name(column)),
        "SELECT " + template.format(duck_name(column)),
    )


def _revenue(report: Report, engines: Engines, partitions: list[str]) -> None:
    """Revenue by partition, and in all: exact when both columns are exact."""
    s_price, s_qty = spark_name(PRICE), spark_name(QUANTITY)
    d_price, d_qty = duck_name(PRICE), duck_name(QUANTITY)
    s_keys = "".join(f"CAST({spark_name(c)} AS STRING), " for c in partitions)
    d_keys = "".join(f"CAST({duck_name(c)} AS VARCHAR), " for c in partitions)
    where_s, where_d = f"WHERE {s_price} IS NOT NULL", f"WHERE {d_price} IS NOT NULL"
    _guarded(
        report,
        "revenue (unit_price * quantity) by partition",
        engines,
        f"SELECT {s_keys}SUM({s_price} * {s_qty}) FROM flat {where_s} GROUP BY ALL",
        f"SELECT {d_keys}SUM({d_price} * {d_qty}) FROM flat {where_d} GROUP BY ALL",
    )
    _guarded(
        report,
        "revenue in all",
        engines,
        f"SELECT SUM({s_price} * {s_qty}) FROM flat",
        f"SELECT SUM({d_price} * {d_qty}) FROM flat",
    )


def _rows(
    report: Report,
    engines: Engines,
    common: list[str],
    spark_types: dict[str, str],
    duck_types: dict[str, str],
) -> None:
    """Every value of every row, in position order (then event id)."""
    order = [c for c in ("position", "event_id") if c in common]
    if not order:
        print("note  no position or event_id column: rows not compared one by one")
        return
    columns = sorted(common)
    s_exprs = [value_expression(c, spark_types[c], spark_name, "spark") for c in columns]
    d_exprs = [value_expression(c, duck_types[c], duck_name, engines.lambdas) for c in columns]
    s_order = ", ".join(spark_name(c) for c in order)
    d_order = ", ".join(duck_name(c) for c in order)
    try:
        spark_rows, duck_rows = engines.both(
            f"SELECT {', '.join(s_exprs)} FROM flat ORDER BY {s_order}",
            f"SELECT {', '.join(d_exprs)} FROM flat ORDER BY {d_order}",
        )
    except Exception as exc:
        report.diff("values, row by row", first_line(exc))
        return
    if len(spark_rows) != len(duck_rows):
        report.diff("values, row by row", f"{len(spark_rows)} rows != {len(duck_rows)}")
        return
    differing = 0
    for index, column in enumerate(columns):
        bad = [
            (duck_row[columns.index("position")] if "position" in columns else n, s[index], d)
            for n, (s, duck_row) in enumerate(zip(spark_rows, duck_rows, strict=True))
            if not _close(s[index], d := duck_row[index])
        ]
        if bad:
            differing += 1
            shown = "; ".join(
                f"position {p}: Spark {_short(s, 80)} DuckDB {_short(d, 80)}"
                for p, s, d in bad[:SHOWN]
            )
            report.diff(f"values of {column}", f"{len(bad)} rows differ, e.g. {shown}")
    if not differing:
        report.ok("values, row by row", f"{len(spark_rows)} rows x {len(columns)} columns equal")


def _close(spark: Any, duck: Any) -> bool:
    """Equal, but for floats, which two engines may sum in another order (1e-12 apart)."""
    if isinstance(spark, float) and isinstance(duck, float):
        return math.isclose(spark, duck, rel_tol=1e-12)
    if isinstance(spark, list | tuple) and isinstance(duck, list | tuple):
        return len(spark) == len(duck) and all(
            _close(s, d) for s, d in zip(spark, duck, strict=True)
        )
    return bool(spark == duck) and type(spark) is type(duck)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path, help="the directory of `eventlab export --flat`")
    parser.add_argument("--master", default="local[1]", help="Spark master (default local[1])")
    parser.add_argument(
        "--no-rows", action="store_true", help="skip the row-by-row comparison (big datasets)"
    )
    parser.add_argument(
        "--conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark setting, repeatable (e.g. spark.sql.parquet.datetimeRebaseModeInRead="
        "CORRECTED)",
    )
    args = parser.parse_args(argv)
    if not args.dataset.is_dir():
        parser.error(f"{args.dataset} is not a directory")
    if any("=" not in item for item in args.conf):
        parser.error("--conf takes KEY=VALUE")
    conf = dict(item.split("=", 1) for item in args.conf)
    return compare(args.dataset, args.master, conf, not args.no_rows)


if __name__ == "__main__":
    sys.exit(main())
