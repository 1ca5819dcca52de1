"""Personal columns of frames and flat exports: opened in a frame, kept sealed in a copy.

The frame cache and flat exports are copies on disk: they hold personal values sealed, as
the store does, so destroying a subject's key shreds them too. A frame (in memory) has them
opened, or :data:`~eventlab.REDACTED` for a forgotten subject, with a boolean ``redacted``
column saying which rows have a redacted field (docs/forgetting.md).
"""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._core.personal import REDACTED
from .._core.sealing import DataKey, looks_sealed, sealed_subject
from .._shred.personal_data import PersonalData, open_payload

FLAG = "redacted"
"""The boolean column saying that a row has a redacted personal field."""

_PAYLOAD = "payload."


def personal_of(store: Any) -> PersonalData | None:
    """The store's :class:`PersonalData` (``None`` for a store without a key store)."""
    personal = getattr(store, "personal", None)
    return personal if isinstance(personal, PersonalData) else None


async def open_frame(
    frame: pd.DataFrame, personal: PersonalData | None, *, typed_nulls: bool = False
) -> pd.DataFrame:
    """``frame`` with its sealed personal values opened (or redacted) and the ``redacted``
    column; unchanged for a store without a key store.

    A column with no redacted and no missing value takes its values' dtype (``int64``,
    ``datetime64``); one with a redacted value stays ``object``. ``typed_nulls`` (for a
    Polars frame, whose columns hold one type): a redacted value in a column whose other
    values are not text becomes null (the ``redacted`` column still says which rows)."""
    if personal is None:
        return frame
    columns = _sealed_columns(frame)
    flags = pd.Series(False, index=frame.index, dtype=bool)
    if columns:
        keys = await personal.keys.get(sorted(_subjects(frame, columns)))
        ids = frame["event_id"].tolist()
        for name in columns:
            values, redacted = _opened_column(frame[name].tolist(), ids, name, keys)
            frame[name] = _column(values, frame.index, typed_nulls=typed_nulls)
            flags |= pd.Series(redacted, index=frame.index, dtype=bool)
    frame[FLAG] = flags | _marker_text(frame, personal)
    return frame


def _marker_text(frame: pd.DataFrame, personal: PersonalData) -> pd.Series:
    """Per row, whether a field its event declares personal holds the marker's text (an
    export written after a forget, imported again): that row is redacted too."""
    flags = pd.Series(False, index=frame.index, dtype=bool)
    if "event_type" not in frame.columns or not len(frame):
        return flags
    types = frame["event_type"].tolist()
    declared = {t: personal.declared(t) for t in set(types)}
    for name in frame.columns:
        dtype = frame[name].dtype
        if not name.startswith(_PAYLOAD) or not (
            pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
        ):
            continue
        field = name[len(_PAYLOAD) :]
        values = frame[name].tolist()
        marked = [
            isinstance(v, str) and v == REDACTED and field in getattr(declared[t], "fields", ())
            for v, t in zip(values, types, strict=True)
        ]
        if any(marked):
            frame[name] = pd.Series(
                [REDACTED if m else v for v, m in zip(values, marked, strict=True)],
                index=frame.index,
                dtype=object,
            )
            flags |= pd.Series(marked, index=frame.index, dtype=bool)
    return flags


def _column(values: list[Any], index: Any, *, typed_nulls: bool) -> pd.Series:
    if not any(v is None or (isinstance(v, str) and v == REDACTED) for v in values):
        return pd.Series(values, index=index)  # the values' own dtype
    others = [v for v in values if v is not None and not (isinstance(v, str) and v == REDACTED)]
    if typed_nulls and others and not all(isinstance(v, str) for v in others):
        values = [None if isinstance(v, str) and v == REDACTED else v for v in values]
    return pd.Series(values, index=index, dtype=object)


def _sealed_columns(frame: pd.DataFrame) -> list[str]:
    found = []
    for name in frame.columns:
        if not (name.startswith(_PAYLOAD) or name == "payload") or name == FLAG:
            continue
        column = frame[name]
        typed = column.dtype == object or "binary" in str(column.dtype)
        if typed and any(_holds_sealed(v) for v in column.tolist()):
            found.append(name)
    return found


def _holds_sealed(value: Any) -> bool:
    if isinstance(value, dict):
        return any(looks_sealed(v) for v in value.values())
    return looks_sealed(value)


def _subjects(frame: pd.DataFrame, columns: list[str]) -> set[str]:
    subjects: set[str] = set()
    for name in columns:
        for value in frame[name].tolist():
            values = value.values() if isinstance(value, dict) else (value,)
            subjects.update(s for s in map(sealed_subject, values) if s is not None)
    return subjects


def _opened_column(
    values: list[Any], ids: list[Any], name: str, keys: dict[str, DataKey]
) -> tuple[list[Any], list[bool]]:
    """One column opened; and, per row, whether a value of it is redacted."""
    field = name[len(_PAYLOAD) :]
    opened: list[Any] = []
    redacted: list[bool] = []
    for value, event_id in zip(values, ids, strict=True):
        if isinstance(value, dict):  # flatten=False: the payload column holds the dicts
            payload = open_payload(value, _uuid(event_id), keys)
            opened.append(payload)
            redacted.append(any(v is REDACTED for v in payload.values()))
            continue
        if not isinstance(value, bytes):
            opened.append(value)
            redacted.append(False)
            continue
        # Bytes in a column of sealed values: a malformed one reads as redacted too.
        key = keys.get(sealed_subject(value) or "")
        ok, plain = key.open(value, _uuid(event_id), field) if key is not None else (False, None)
        opened.append(plain if ok else REDACTED)
        redacted.append(not ok)
    return opened, redacted


def _uuid(event_id: Any) -> uuid.UUID:
    return event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id))


async def redact_table(table: pa.Table, personal: PersonalData | None) -> pa.Table:
    """A flat export's table: sealed values kept sealed, those of forgotten subjects made
    null, and the ``redacted`` column; unchanged for a store without a key store."""
    if personal is None:
        return table
    flags = pa.array([False] * table.num_rows, pa.bool_())
    sealed = [
        name
        for name in table.column_names
        if name.startswith(_PAYLOAD) and pa.types.is_binary(table.schema.field(name).type)
    ]
    subjects = {
        s for name in sealed for s in map(sealed_subject, table[name].to_pylist()) if s is not None
    }
    live = set(await personal.keys.get(sorted(subjects))) if subjects else set()
    for name in sealed:
        values = table[name].to_pylist()
        gone = [sealed_subject(v) not in (None, *live) for v in values]
        if any(gone):
            mask = pa.array(gone, pa.bool_())
            column = pc.if_else(mask, pa.scalar(None, table.schema.field(name).type), table[name])
            table = table.set_column(table.column_names.index(name), name, column)
            flags = pc.or_(flags, mask)
    return table.append_column(FLAG, flags)
