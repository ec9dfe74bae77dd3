"""Terminal escape injection (issue 12, item 11): whatever a server sends, the CLI prints no
control character; JSON and YAML output escape them instead."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kupe.cli.main import app

# A title change, a screen clear, a C1 CSI and a bell: what a hostile server might send.
EVIL = "Prod\x1b]0;pwned\x07\x1b[2J\x9b31m\x7f"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # tab and newline are the CLI's own
STAMP = "2026-01-01T00:00:00Z"
CLUSTER: dict[str, Any] = {
    "name": "web",
    "displayName": EVIL,
    "type": "shared",
    "version": "1.32",
    "resources": {"cpu": "1", "memory": "2Gi", "storage": "10Gi"},
    "resourceVersion": "7",
    "generation": 1,
    "createdAt": STAMP,
    "status": {
        "phase": "Running",
        "endpoint": f"https://web.{EVIL}.example",
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": EVIL,
                "message": EVIL,
                "lastTransitionTime": STAMP,
            }
        ],
    },
}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.endswith("/clusters/web"):
            self._send(200, CLUSTER)
        elif self.path.endswith("/clusters"):
            self._send(200, {"items": [CLUSTER]})
        else:
            self._send(404, {"error": f"no such thing {EVIL}", "code": "NOT_FOUND"})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def hostile_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def kupe(url: str, *args: str) -> tuple[int, str, str]:
    env = {"KUPE_API_URL": url, "KUPE_API_KEY": "kupe_aaaaaaaa_" + "b" * 43, "KUPE_TENANT": "t"}
    result = CliRunner().invoke(app, list(args), env={**env, "KUPE_PROFILE": None})
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("command", "shown"), [(["clusters", "get", "web"], "Prod"), (["clusters", "list"], "web")]
)
def test_tables_print_no_control_characters(
    hostile_server: str, command: list[str], shown: str
) -> None:
    code, out, err = kupe(hostile_server, *command)
    assert code == 0, err
    assert shown in out
    assert not CONTROL.search(out + err), repr(out)


def test_errors_from_the_server_print_no_control_characters(hostile_server: str) -> None:
    code, out, err = kupe(hostile_server, "tenant", "get")
    assert code == 1
    assert "no such thing" in err
    assert not CONTROL.search(out + err), repr(err)


def test_json_output_escapes_them_and_keeps_the_data(hostile_server: str) -> None:
    code, out, _ = kupe(hostile_server, "clusters", "get", "web", "-o", "json")
    assert code == 0
    assert not CONTROL.search(out), repr(out)
    assert json.loads(out)["displayName"] == EVIL


def test_yaml_output_escapes_them_and_keeps_the_data(hostile_server: str) -> None:
    code, out, _ = kupe(hostile_server, "clusters", "get", "web", "-o", "yaml")
    assert code == 0
    assert not CONTROL.search(out), repr(out)
    assert yaml.safe_load(out)["displayName"] == EVIL
