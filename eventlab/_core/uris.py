"""MongoDB URIs in messages, reprs and logs: credentials and secret options never shown.

A URI is masked by its structure, not by a pattern for well-formed ones: a mistyped or
upper-case scheme, a raw ``@`` inside a password, a password in a query option are exactly the
URIs that reach error messages. The userinfo is everything between ``://`` and the **last**
``@`` before the query, and every option whose value is a secret is masked; whatever else a
message quotes (a driver error that echoes the URI) is scrubbed of those same secrets.
Options are split with the driver's own parser (``pymongo.uri_parser.split_options``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

from pymongo.errors import PyMongoError
from pymongo.uri_parser import split_options

MASK = "***"

SECRET_OPTIONS = frozenset(
    {
        "password",
        "authmechanismproperties",
        "tlscertificatekeyfilepassword",
        "sslclientcertificatekeypassword",
        "sslpemkeypassword",
        "proxypassword",
        "awssessiontoken",
        "aws_session_token",
        "token",
        "secret",
    }
)
"""Query options whose values are secrets (lower case): masked whole."""

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.\-]*://)[^\s?#]*@")


def _parts(uri: str) -> tuple[str, str | None, str, str | None]:
    """(scheme, userinfo, hosts and path, query) of ``uri``, whatever its scheme."""
    scheme_match = _SCHEME.match(uri)
    scheme = scheme_match.group(0) if scheme_match else ""
    rest = uri[len(scheme) :]
    query: str | None = None
    if "?" in rest:
        rest, query = rest.split("?", 1)
    at = rest.rfind("@")
    if at < 0:
        return scheme, None, rest, query
    return scheme, rest[:at], rest[at + 1 :], query


def _masked_query(query: str) -> str:
    pairs = []
    for pair in re.split(r"[&;]", query):
        key, sep, _value = pair.partition("=")
        pairs.append(f"{key}{sep}{MASK}" if sep and key.lower() in SECRET_OPTIONS else pair)
    return "&".join(pairs)


def mask_uri(uri: str) -> str:
    """``uri`` with its credentials (``***@``) and secret option values masked: safe to show."""
    if not isinstance(uri, str):
        return "<not a string>"
    scheme, userinfo, hosts, query = _parts(uri)
    shown = scheme + (f"{MASK}@" if userinfo is not None else "") + hosts
    return shown + (f"?{_masked_query(query)}" if query is not None else "")


def secrets_of(uri: str) -> list[str]:
    """The secret parts of ``uri`` as written and decoded, longest first (for :func:`scrub`)."""
    if not isinstance(uri, str):
        return []
    _, userinfo, _, query = _parts(uri)
    found: set[str] = set()
    if userinfo:
        found |= {userinfo, unquote_plus(userinfo)}
        _, _, password = userinfo.partition(":")
        if password:
            found |= {password, unquote_plus(password)}
    if query:
        for pair in re.split(r"[&;]", query):
            key, _, value = pair.partition("=")
            if key.lower() in SECRET_OPTIONS and value:
                found |= {value, unquote_plus(value)}
                found |= {part.split(":", 1)[-1] for part in unquote_plus(value).split(",")}
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


def scrub(text: str, uri: str | None) -> str:
    """``text`` with every secret of ``uri`` and any ``scheme://userinfo@`` masked."""
    for secret in secrets_of(uri) if uri else []:
        text = text.replace(secret, MASK)
    return _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)


def uri_options(uri: str) -> set[str]:
    """The names (lower case) of the options ``uri`` sets; empty when it cannot be parsed."""
    _, _, _, query = _parts(uri)
    if not query:
        return set()
    try:
        options: Any = split_options(query, validate=False, warn=False, normalize=False)
    except (PyMongoError, ValueError, TypeError):
        return set()
    return {str(name).lower() for name in options}
