"""Which service made a final: one name per service, never the key."""

from __future__ import annotations

from runflow_cli.api.service import SANDBOX, describe, legacy_service, service_for

LIVE = "rf_live_" + "a" * 32
TEST = "rf_test_" + "b" * 32


def test_every_sandbox_is_one_service_whatever_its_port() -> None:
    assert service_for("http://127.0.0.1:41000", TEST) == SANDBOX
    assert service_for("http://localhost:8080/", TEST) == SANDBOX
    assert service_for("https://api.runflow.io", LIVE, sandbox=True) == SANDBOX
    assert describe(SANDBOX) == "the sandbox"


def test_a_live_key_on_loopback_is_not_the_sandbox() -> None:
    assert service_for("http://127.0.0.1:9999", LIVE) == "http://127.0.0.1:9999"


def test_one_spelling_per_service_and_never_the_key() -> None:
    spellings = ["https://api.runflow.io", "HTTPS://API.Runflow.io:443/", "https://api.runflow.io/"]
    assert {service_for(url, LIVE) for url in spellings} == {"https://api.runflow.io"}
    assert service_for("https://api.runflow.io", TEST) == "https://api.runflow.io (test key)"
    assert all(LIVE not in service_for(url, LIVE) for url in spellings)


def test_what_0_1_0_recorded_maps_to_its_service() -> None:
    assert legacy_service("http://127.0.0.1:36333") == SANDBOX
    assert legacy_service("http://127.0.0.1:36333 (sandbox 0123abcd)") == SANDBOX
    assert legacy_service("https://API.runflow.io/") == "https://api.runflow.io"
