"""A small Python client for Assay's Assemblyline-compatible API (httpx, API-key headers).

    from assay import Client
    client = Client("http://127.0.0.1:8000", user="admin", apikey="default:SECRET")
    ingest_id = client.ingest("sample.exe", nq="my-queue", metadata={"file_path": "/tmp/sample.exe"})
    for message in client.messages("my-queue"):
        print(message["submission"]["sid"], message["score"])

The unmodified ``assemblyline-client`` works against Assay too; this one exists so the CLI
has no dependency on it and can stream files of any size.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx


class ClientError(RuntimeError):
    """The server refused a request; ``status`` and the server's message are kept."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Client:
    def __init__(
        self, server: str, user: str, apikey: str, verify: bool = True, timeout: float = 60.0
    ) -> None:
        self.http = httpx.Client(
            base_url=server.rstrip("/"),
            headers={"X-USER": user, "X-APIKEY": apikey},
            verify=verify,
            timeout=timeout,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, retries: int = 30, **kwargs: Any) -> Any:
        for attempt in range(retries):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == retries - 1:
                    raise ClientError(0, f"cannot reach the server: {exc}") from exc
                time.sleep(min(2.0, 0.05 * 2**attempt))
                continue
            if response.status_code in {502, 503, 504} and attempt < retries - 1:
                time.sleep(min(2.0, 0.05 * 2**attempt))
                continue
            try:
                body = response.json()
            except ValueError:
                raise ClientError(response.status_code, response.text[:200]) from None
            if response.status_code >= 400:
                raise ClientError(response.status_code, body.get("api_error_message") or str(body))
            return body["api_response"]
        raise ClientError(503, "server stayed busy")

    def _send(self, path: str, file: Path, description: dict[str, Any]) -> Any:
        with file.open("rb") as handle:
            return self._call(
                "POST", path, files={"json": (None, json.dumps(description)), "bin": (file.name, handle)}
            )

    def ingest(
        self,
        path: str | Path,
        *,
        nq: str | None = None,
        metadata: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> str:
        file = Path(path)
        description: dict[str, Any] = {
            "name": name or file.name,
            "metadata": metadata or {},
            "params": params or {},
        }
        if nq:
            description["notification_queue"] = nq
        return str(self._send("/api/v4/ingest/", file, description)["ingest_id"])

    def submit(
        self,
        path: str | Path,
        *,
        params: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        file = Path(path)
        return dict(
            self._send(
                "/api/v4/submit/",
                file,
                {"name": file.name, "params": params or {}, "metadata": metadata or {}},
            )
        )

    def messages(self, nq: str, page_size: int = 1000) -> list[dict[str, Any]]:
        return list(
            self._call("GET", f"/api/v4/ingest/get_message_list/{nq}/", params={"page_size": page_size})
        )

    def submission(self, sid: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v4/submission/{sid}/"))

    def is_completed(self, sid: str) -> bool:
        return bool(self._call("GET", f"/api/v4/submission/is_completed/{sid}/"))

    def wait(self, sid: str, timeout: float = 600.0, poll: float = 0.25) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not self.is_completed(sid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"submission {sid} did not complete within {timeout:g} s")
            time.sleep(poll)
        return self.submission(sid)
