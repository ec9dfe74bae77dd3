"""Masking, the `"<secret>"` round-trip and the checks on tenants' documents, as pure
functions."""

from __future__ import annotations

from kupe.server.alertmanager.config import (
    SECRET,
    credentials,
    file_reference,
    mask,
    private_url,
    restore,
    sanitise,
)

RECEIVER = {
    "webhook_configs": [
        {
            "url": "https://hooks.example.com/abc",
            "http_config": {
                "basic_auth": {"username": "kupe", "password": "pw-1"},
                "http_headers": {"X-Token": {"secrets": ["s-1", "s-2"], "values": ["plain"]}},
            },
        }
    ],
    "pagerduty_configs": [{"routing_key": "rk-1", "severity": "critical"}],
}


def test_every_credential_is_masked_and_nothing_else() -> None:
    masked = mask(RECEIVER)
    hook = masked["webhook_configs"][0]
    assert hook["url"] == SECRET
    assert hook["http_config"]["basic_auth"] == {"username": "kupe", "password": SECRET}
    assert hook["http_config"]["http_headers"]["X-Token"] == {
        "secrets": [SECRET, SECRET],
        "values": ["plain"],
    }
    assert masked["pagerduty_configs"] == [{"routing_key": SECRET, "severity": "critical"}]


def test_sentinels_keep_what_is_stored_and_are_dropped_otherwise() -> None:
    sent = mask(RECEIVER)
    sent["pagerduty_configs"][0]["severity"] = "warning"
    assert restore(sent, RECEIVER) == {
        **RECEIVER,
        "pagerduty_configs": [{"routing_key": "rk-1", "severity": "warning"}],
    }
    assert restore({"slack_configs": [{"api_url": SECRET, "channel": "#a"}]}, None) == {
        "slack_configs": [{"channel": "#a"}]
    }
    # A new value replaces the stored one.
    assert restore({"url": "https://new.example"}, {"url": "https://old.example"}) == {
        "url": "https://new.example"
    }


def test_messages_lose_every_credential() -> None:
    secrets = credentials({"webhook_configs": [{"url": "ftp://u:pa55word@host/t0ken-path?q=k3y"}]})
    message = 'unsupported scheme "ftp" for URL ftp://u:pa55word@host/t0ken-path?q=k3y'
    cleaned = sanitise(message, secrets)
    for part in ("pa55word", "t0ken-path", "k3y"):
        assert part not in cleaned


def test_files_and_private_addresses_are_found() -> None:
    assert file_reference({"a": [{"password_file": "/etc/x"}]}, "") == "a.0.password_file"
    assert file_reference({"http_headers": {"H": {"files": ["/etc/x"]}}}, "") == (
        "http_headers.H.files"
    )
    assert file_reference(RECEIVER, "") is None
    assert private_url({"webhook_configs": [{"url": "http://127.0.0.1/"}]}, "") == (
        "webhook_configs.0.url"
    )
    assert private_url({"api_url": "https://hooks.slack.com/x"}, "") is None
    assert private_url({"url": "http://[fd00::1]/"}, "") == "url"
