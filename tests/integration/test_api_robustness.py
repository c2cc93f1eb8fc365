"""Every route of the OpenAPI document, fed malformed input: a 4xx with a message, never a 500.

The routes come from the live server's own document, so a route added later is covered without
touching this file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.servers import Server, running_server

SEGMENTS = ["x", "0", "a%00b", "-1", "%00", "..%2F..%2Fetc%2Fpasswd", "a" * 300, "%ff%fe", "1e309", "null"]
QUERIES = [
    "?rows=abc",
    "?offset=-1",
    "?page_size=-5",
    "?page_size=999999999999999999999",
    "?query=%00((",
    "?q=1e309",
    "?query=%00&user=%00",
]
BODIES = [
    b"",
    b"{",
    b"[]",
    b"null",
    b"\xff\xfe",
    b'"text"',
    b"123",
    b'{"query": 5}',
    b'{"rows": "x"}',
    b'{"rows": 1e309}',
    b'{"rows": -1, "offset": -5}',
    b'{"sha256": 5, "name": {"a": 1}}',
    b'{"query": "max_score:>=99999999999999999999"}',
    b'{"query": "sid:\\u0000", "name": "\\u0000", "sha256": "\\u0000", "user": "\\u0000", "apikey": "\\u0000"}',
    b'{"query": "' + b"(" * 300 + b'"}',
    json.dumps({"metadata": json.loads("[" * 60 + "]" * 60)}).encode(),
]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over each database: PostgreSQL refuses some values SQLite stores (NUL characters)."""
    with running_server(tmp_path_factory.mktemp(request.param), request.param) as server:
        yield server


def _requests(spec: dict) -> list[tuple[str, str, bytes | None]]:
    requests: list[tuple[str, str, bytes | None]] = []
    for path, operations in spec["paths"].items():
        for method in operations:
            for segment in SEGMENTS:
                url = re.sub(r"\{[^}]+\}", segment, path)
                requests.append((method.upper(), url, None))
            url = re.sub(r"\{[^}]+\}", "x", path)
            requests.extend((method.upper(), url + query, None) for query in QUERIES)
            if method in ("post", "put"):
                requests.extend((method.upper(), url, body) for body in BODIES)
    return requests


def _message(response: httpx.Response) -> str:
    body = response.json()
    return body.get("api_error_message") or body.get("message") or ""


@pytest.mark.parametrize("authenticated", [True, False], ids=["with-key", "anonymous"])
def test_every_route_answers_malformed_input_with_a_4xx_and_a_message(server: Server, authenticated: bool) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    headers = {"content-type": "application/json", **(server.headers if authenticated else {})}
    failures = []
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        for method, url, body in _requests(spec):
            try:
                response = client.request(method, url, content=body)
            except httpx.TransportError as exc:  # the server dropped the connection after a crash
                failures.append((method, url, body[:40] if body else body, repr(exc)))
                continue
            if response.status_code >= 500 or (response.status_code >= 400 and not _message(response)):
                failures.append((method, url, body[:40] if body else body, response.status_code, response.text[:200]))
    assert not failures, failures
    assert "Traceback" not in server.log.read_text(errors="replace")


def test_a_threshold_beyond_32_bits_is_refused_before_it_reaches_the_batch(server: Server) -> None:
    body = {"name": "t.txt", "notification_queue": "tq", "notification_threshold": 2**62}
    files = {"json": (None, json.dumps(body)), "bin": ("t.txt", b"threshold test " + json.dumps(body).encode())}
    with server.client() as client:
        refused = client.post("/api/v4/ingest/", files=files)
    assert refused.status_code == 400 and "32-bit" in refused.json()["api_error_message"]
