"""Bounded HTTP fetching shared by the cloud collectors.

A cloud account is hostile ground for a forensic tool: pages may never end, bodies may be
huge, a ``next`` link may point anywhere, and the examiner's credential must never leak into
a bundle, an exception or a log. :class:`Fetcher` talks to one base URL only, bounds pages,
items, bytes and wall-clock time, retries 5xx and 429 with capped exponential back-off
(honouring ``Retry-After`` up to the cap), and turns every failure into a
:class:`CollectorError` whose message has every secret scrubbed out.

Example::

    with Fetcher("https://api.smartthings.com/v1", {"Authorization": f"Bearer {token}"},
                 secrets=(token,)) as fetcher:
        locations = fetcher.paginate("/locations").items
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, quote_plus, urljoin, urlsplit, urlunsplit

import httpx

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_STATUS_KINDS = {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "rate_limited"}
_HINTS = {
    "unauthorized": "the credential was rejected (expired or revoked?)",
    "forbidden": "the credential lacks the scope or permission for this endpoint",
    "not_found": "the endpoint does not exist (any more) on this server",
    "rate_limited": "the server kept rate-limiting the requests",
}
_SECRET_MIN = 4


class CollectorError(Exception):
    """A collection failure with a short machine ``kind`` and a message free of credentials.

    Kinds: ``unauthorized``, ``forbidden``, ``not_found``, ``rate_limited``, ``server_error``,
    ``http_error``, ``timeout``, ``network``, ``too_large``, ``bad_response``, ``foreign_host``,
    ``time_budget``, ``page_limit``, ``item_limit``, ``page_loop``, ``bad_base_url``,
    ``bad_credentials``, ``no_credentials``, ``login_required``.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    def as_dict(self, endpoint: str) -> dict[str, str]:
        return {"endpoint": endpoint, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class FetchLimits:
    """Every bound of one collection run.

    ``timeout`` seconds per request; ``retries`` extra attempts on 5xx/429/transport errors;
    back-off starts at ``backoff`` seconds, doubles, and never exceeds ``max_backoff`` (nor does
    an honoured ``Retry-After``); ``max_pages`` per paginated endpoint; ``max_items`` per
    endpoint; ``max_bytes`` per response body; ``max_total_bytes`` over the run;
    ``max_seconds`` of wall-clock time for the whole run; ``max_details`` per-object follow-up
    requests (device status, list items) at most.
    """

    timeout: float = 20.0
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_pages: int = 50
    max_items: int = 10_000
    max_bytes: int = 16 * 1024 * 1024
    max_total_bytes: int = 256 * 1024 * 1024
    max_seconds: float = 900.0
    max_details: int = 500


@dataclass
class Paged:
    """Items gathered over pages; ``stopped`` says why paging ended early, if it did."""

    items: list[Any] = field(default_factory=list)
    pages: int = 0
    stopped: CollectorError | None = None


NextPage = Callable[[Any, list[Any]], "str | tuple[str, dict[str, Any]] | None"]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (and its URL-encoded spelling) replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= _SECRET_MIN:
            for spelling in (secret, quote(secret, safe=""), quote_plus(secret)):
                text = text.replace(spelling, "***")
    return text


def clean_base_url(base_url: str) -> str:
    """The base URL without user info, query or fragment; http(s) only."""
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CollectorError("bad_base_url", "the base URL must be an absolute http(s) URL")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = -1
    return parts.scheme, (parts.hostname or "").lower(), port


def retry_after(value: str | None, cap: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta or HTTP date), capped; ``None`` if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), cap)


def links_next(page: Any, _items: list[Any]) -> str | None:
    """SmartThings-style ``_links.next.href`` (also a bare string), else ``None``."""
    if not isinstance(page, dict):
        return None
    nxt = (page.get("_links") or {}).get("next") if isinstance(page.get("_links"), dict) else None
    if isinstance(nxt, dict):
        nxt = nxt.get("href")
    return nxt if isinstance(nxt, str) and nxt else None


def page_items(page: Any, key: str = "items") -> list[Any]:
    if isinstance(page, list):
        return page
    if isinstance(page, dict) and isinstance(page.get(key), list):
        return page[key]
    return []


class Fetcher:
    """One bounded, single-origin HTTP session; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        secrets: Iterable[str] = (),
        limits: FetchLimits | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = clean_base_url(base_url)
        for value in headers.values():
            if not value.isascii() or any(ord(c) < 0x20 or c == "\x7f" for c in value):
                raise CollectorError("bad_credentials", "the credential holds characters a header cannot carry")
        self.limits = limits or FetchLimits()
        self.secrets = tuple(s for s in secrets if s)
        self.total_bytes = 0
        self._sleep = sleep
        self._deadline = time.monotonic() + self.limits.max_seconds
        self._origin = _origin(self.base_url)
        self._client = httpx.Client(
            headers={"Accept": "application/json", "Accept-Encoding": "gzip, deflate", **headers},
            timeout=self.limits.timeout,
            follow_redirects=False,
            transport=transport,
            trust_env=False,
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def error(self, kind: str, message: str) -> CollectorError:
        return CollectorError(kind, scrub(message, self.secrets))

    def url_for(self, path_or_url: str) -> str:
        """Absolute URL of a path under the base URL, or of a link; only the base's origin is allowed."""
        if path_or_url.startswith(("http://", "https://", "//")):
            url = urljoin(self.base_url + "/", path_or_url)
        else:
            url = self.base_url + "/" + path_or_url.lstrip("/")
        if _origin(url) != self._origin:
            host = urlsplit(url).hostname or "?"
            raise self.error("foreign_host", f"refused to follow a link to another host ({host})")
        return url

    def remaining(self) -> float:
        return self._deadline - time.monotonic()

    def exhausted(self) -> CollectorError | None:
        """Why no further request can succeed (time or total bytes spent), or ``None``."""
        if self.remaining() <= 0:
            return CollectorError("time_budget", f"time budget of {self.limits.max_seconds:g} s spent")
        if self.total_bytes >= self.limits.max_total_bytes:
            return CollectorError("too_large", f"run reached {self.limits.max_total_bytes} bytes in total")
        return None

    def get_json(self, path_or_url: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET one JSON document with retries and every bound applied."""
        url = self.url_for(path_or_url)
        label = urlsplit(url).path
        attempt = 0
        while True:
            if self.remaining() <= 0:
                raise self.error("time_budget", f"time budget of {self.limits.max_seconds:g} s spent")
            try:
                status, headers, body = self._get(url, params)
            except CollectorError as exc:
                if exc.kind not in ("timeout", "network") or attempt >= self.limits.retries:
                    raise
                self._pause(attempt, None)
                attempt += 1
                continue
            if status in _RETRY_STATUSES and attempt < self.limits.retries:
                self._pause(attempt, retry_after(headers.get("retry-after"), self.limits.max_backoff))
                attempt += 1
                continue
            if status >= 400:
                raise self._status_error(status, label)
            return self._decode(body, label)

    def _get(self, url: str, params: Mapping[str, Any] | None) -> tuple[int, httpx.Headers, bytes]:
        timeout = max(0.001, min(self.limits.timeout, self.remaining()))
        try:
            with self._client.stream("GET", url, params=params, timeout=timeout) as response:
                if response.status_code >= 300:  # the body of a refusal is never needed
                    return response.status_code, response.headers, b""
                return response.status_code, response.headers, self._read(response)
        except httpx.TimeoutException:
            raise self.error("timeout", f"no answer from {urlsplit(url).path} within {timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise self.error("network", f"{type(exc).__name__} on {urlsplit(url).path}") from None

    def _read(self, response: httpx.Response) -> bytes:
        limit = self.limits.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self.error("too_large", f"response of {declared} bytes exceeds the limit of {limit}")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_raw():
            size += len(chunk)
            self.total_bytes += len(chunk)
            if size > limit:
                raise self.error("too_large", f"response exceeds the limit of {limit} bytes")
            if self.total_bytes > self.limits.max_total_bytes:
                raise self.error("too_large", f"run exceeds {self.limits.max_total_bytes} bytes in total")
            if self.remaining() <= 0:
                raise self.error("time_budget", "time budget spent while reading a response")
            chunks.append(chunk)
        raw = b"".join(chunks)
        encoding = response.headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "deflate", "br", "zstd"):
            return self._decompress(raw, encoding, limit)
        return raw

    def _decompress(self, raw: bytes, encoding: str, limit: int) -> bytes:
        if encoding not in ("gzip", "deflate"):
            raise self.error("bad_response", f"unsupported content encoding {encoding}")
        wbits = 31 if encoding == "gzip" else 15
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(raw, limit + 1)
        except zlib.error:
            raise self.error("bad_response", "corrupt compressed body") from None
        if len(out) > limit:
            raise self.error("too_large", f"decompressed response exceeds the limit of {limit} bytes")
        return out

    def _pause(self, attempt: int, asked: float | None) -> None:
        delay = asked if asked is not None else min(self.limits.backoff * 2**attempt, self.limits.max_backoff)
        delay = min(delay, max(0.0, self.remaining()))
        if delay > 0:
            self._sleep(delay)

    def _status_error(self, status: int, label: str) -> CollectorError:
        kind = _STATUS_KINDS.get(status) or ("server_error" if status >= 500 else "http_error")
        hint = _HINTS.get(kind, "unexpected status")
        return self.error(kind, f"HTTP {status} from {label}: {hint}")

    def _decode(self, body: bytes, label: str) -> Any:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):  # bad JSON, bad UTF-8, or an int beyond the digit limit
            raise self.error("bad_response", f"{label} did not answer with JSON ({len(body)} bytes)") from None

    def paginate(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        key: str = "items",
        next_page: NextPage = links_next,
    ) -> Paged:
        """Items of every page of ``path``, bounded; errors after the first page stop paging quietly.

        ``next_page(page, items)`` gives the next link (absolute or relative) or
        ``(path, params)``, or ``None`` at the end. A failure on the first page is raised.
        """
        paged = Paged()
        target: str = path
        query: dict[str, Any] | None = dict(params) if params else None
        seen: set[str] = set()
        while True:
            try:
                page = self.get_json(target, query)
            except CollectorError as exc:
                if paged.pages == 0 or exc.kind == "unauthorized":
                    raise
                paged.stopped = exc
                return paged
            paged.pages += 1
            items = page_items(page, key)
            room = self.limits.max_items - len(paged.items)
            paged.items.extend(items[: max(room, 0)])
            if len(items) > room:
                paged.stopped = self.error("item_limit", f"{path}: stopped at {self.limits.max_items} items")
                return paged
            following = next_page(page, items)
            if following is None:
                return paged
            if isinstance(following, str):  # a link: resolved like a browser would, against the base
                target, query = urljoin(self.base_url + "/", following), None
            else:
                target, query = following
            fingerprint = f"{target}?{sorted((query or {}).items())}"
            if fingerprint in seen:
                paged.stopped = self.error("page_loop", f"{path}: the next link repeats itself")
                return paged
            seen.add(fingerprint)
            if paged.pages >= self.limits.max_pages:
                paged.stopped = self.error("page_limit", f"{path}: stopped after {self.limits.max_pages} pages")
                return paged
            try:
                self.url_for(target)
            except CollectorError as exc:
                paged.stopped = exc
                return paged
