"""Where an archive lives: a local directory or an fsspec URL, checked before anything is
written, and the few file operations an archive needs (read, write whole files atomically,
list), so that a file is either absent or complete."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec

from .._core.errors import ArchiveError, ConfigurationError

MAX_URL = 2_000


class ArchiveLocation:
    """A checked archive location: ``url`` is what the store records (an absolute local path,
    or the URL as given without a trailing ``/``); never credentials (they come from the
    environment, as fsspec's backends take them)."""

    def __init__(self, url: str, fs: Any, root: str) -> None:
        self.url = url
        self.fs = fs
        self.root = root

    def __repr__(self) -> str:
        return f"<ArchiveLocation {self.url!r}>"

    @classmethod
    def of(cls, value: Any) -> ArchiveLocation:
        """The location ``value`` names, or :class:`~eventlab.ConfigurationError` saying why
        it cannot be one (nothing is created here)."""
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(
                f"an archive location must be a directory path or a URL, got {_short(value)}"
            )
        if len(value) > MAX_URL or any(ord(c) < 32 for c in value):
            raise ConfigurationError(
                f"an archive location must be a printable path or URL of at most {MAX_URL:,} "
                f"characters, got {_short(value)}"
            )
        if "://" not in value:
            path = Path(value).expanduser().absolute()
            return cls(str(path), fsspec.filesystem("file"), str(path))
        return _url(cls, value)

    @property
    def local(self) -> bool:
        return "://" not in self.url

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def ensure(self) -> None:
        """Make the location's directory (its parent must exist, for a local one)."""
        try:
            if self.local:
                parent = Path(self.root).parent
                if not parent.is_dir():
                    raise ArchiveError(f"{parent} does not exist (nothing was written)")
                if Path(self.root).exists() and not Path(self.root).is_dir():
                    raise ArchiveError(f"{self.url} exists and is not a directory")
            self.fs.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"{self.url} cannot be created: {_reason(exc)}") from exc

    def exists(self, name: str) -> bool:
        try:
            return bool(self.fs.exists(self.path(name)))
        except OSError as exc:
            raise ArchiveError(f"{self.url}: cannot look for {name}: {_reason(exc)}") from exc

    def names(self) -> list[str]:
        """The names at the top of the location (none when it does not exist)."""
        try:
            if not self.fs.exists(self.root):
                return []
            return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, False))
        except OSError as exc:
            raise ArchiveError(f"{self.url} cannot be listed: {_reason(exc)}") from exc

    def read(self, name: str) -> bytes:
        try:
            with self.fs.open(self.path(name), "rb") as file:
                data: bytes = file.read()
                return data
        except (OSError, ValueError) as exc:
            raise ArchiveError(f"{self.url}: cannot read {name}: {_reason(exc)}") from exc

    def write(self, name: str, data: bytes) -> None:
        """Write a whole file: to a temporary name beside it, then renamed, so a reader (or
        a crash) sees the file complete or not at all."""
        target = self.path(name)
        temporary = f"{target}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            parent = target.rsplit("/", 1)[0]
            self.fs.makedirs(parent, exist_ok=True)
            if self.local:
                with open(temporary, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, target)
            else:
                with self.fs.open(temporary, "wb") as file:
                    file.write(data)
                self.fs.mv(temporary, target)
        except OSError as exc:
            self._forget(temporary)
            raise ArchiveError(f"{self.url}: cannot write {name}: {_reason(exc)}") from exc

    def _forget(self, path: str) -> None:
        try:
            if self.fs.exists(path):
                self.fs.rm(path)
        except OSError:
            pass  # a temporary file left behind is named by no manifest: never read


def _url(cls: type[ArchiveLocation], value: str) -> ArchiveLocation:
    if not value.split("://", 1)[1].strip("/"):
        raise ConfigurationError(f"an archive URL needs a path below its root, got {value!r:.80}")
    value = value.rstrip("/")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ConfigurationError(f"{_short(value)} is not a URL: {exc}") from None
    if parts.password is not None or parts.username is not None:
        raise ConfigurationError(
            "an archive URL must not carry credentials (the store records its archive's URL): "
            "give them to fsspec through its environment or configuration instead"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"an archive URL takes no query or fragment, got {_short(value)}")
    protocol = parts.scheme
    try:
        fs_class = fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as exc:
        raise ConfigurationError(
            f"{protocol!r} is not a file system fsspec knows here ({str(exc)[:120]})"
        ) from None
    root = fs_class._strip_protocol(value)
    if not isinstance(root, str) or not root.strip("/"):
        raise ConfigurationError(f"an archive URL needs a path below its root, got {value!r:.80}")
    try:
        fs = fsspec.filesystem(protocol)
    except (ValueError, ImportError, TypeError) as exc:
        raise ConfigurationError(f"{protocol!r} cannot be opened: {str(exc)[:120]}") from None
    return cls(value, fs, root.rstrip("/"))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)[:200] or type(exc).__name__
