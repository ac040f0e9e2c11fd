"""Webhook signatures: published test vectors, verify() edge cases, delivery ids.

The vectors below are the contract in data form, so that a receiver written in
any language can check itself: for each (secret, timestamp, body bytes), the
``Runflow-Signature`` entry is ``v1=`` + hex(HMAC-SHA256(secret as UTF-8,
ASCII(timestamp) + "." + body)). They were computed once with Python's hmac
module (and cross-checked with ``openssl dgst -sha256 -hmac``) and are
hard-coded on purpose: never regenerate them from the code under test.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from typing import Any

import pytest

from runflow_cli.api.webhooks import (
    MalformedBodyError,
    MalformedHeaderError,
    MissingHeaderError,
    SignatureMismatchError,
    TimestampOutOfToleranceError,
    WebhookVerificationError,
    delivery_id,
    parse_secrets,
    sign,
    signature,
    verify,
)

# (secret, timestamp, raw body, expected v1= hex)
VECTORS: list[tuple[str, int, bytes, str]] = [
    (
        "rf_whsec_test",
        1745234442,
        b'{"event":"batch.succeeded","id":"01984c44-0000-7000-8000-000000000001"}',
        "427c8d950600ab4f56ce189a4a24fa2acba7adea772aece84ce301b482a8c61d",
    ),
    (
        "rf_whsec_5f1b2c3d4e5f60718293a4b5c6d7e8f901234567",
        1700000000,
        b'{"event":"run.completed","run_id":"01984c46-0000-7000-8000-000000000002",'
        b'"status":"succeeded"}',
        "4155f9f6d181bb48727d8d3eb7145fb54139f61f16bd77afe7b90615bdba3dcb",
    ),
    # An empty body and timestamp 0: the message is just "0.".
    ("secret", 0, b"", "3445798a051818ef95def46c2eb62b43d377ce6e3c29b4d0aec3da0e59577f79"),
    # Non-ASCII secret and body: both are signed as their UTF-8 bytes.
    (
        "s\u00e9cr\u00e8t",
        1745234442,
        '{"client_ref":"caf\u00e9"}'.encode(),
        "11af9cef4ebffafba26ad596aa3c46c82ddc54beb1841040d68e2b8c8c318e07",
    ),
    # Whitespace and a trailing newline are part of the signed bytes: verify the raw
    # body, never a re-serialisation of the parsed JSON.
    (
        "rf_whsec_test",
        1745234442,
        b'{"event": "batch.failed",\n "id": "b"}\n',
        "134dee55e8e8ce97c132f0138ec39620002d8cc98f9f0fbda35fea41a4851e37",
    ),
]

SECRET = "rf_whsec_test"
TS = 1745234442
BODY = VECTORS[0][2]
UUID = "01984d10-7c2b-7f3e-8b4d-1a2b3c4d5e6f"


def headers(sig: str, ts: int | str = TS) -> dict[str, str]:
    return {"Runflow-Signature": sig, "Runflow-Timestamp": str(ts)}


def at(t: float) -> Any:
    return lambda: t


@pytest.mark.parametrize(("secret", "timestamp", "body", "expected"), VECTORS)
def test_published_vectors(secret: str, timestamp: int, body: bytes, expected: str) -> None:
    assert signature(secret, timestamp, body) == expected
    assert sign(secret, timestamp, body) == f"v1={expected}"
    if body:
        assert verify(secret, headers(f"v1={expected}", timestamp), body, now=at(timestamp))


def test_sign_with_several_secrets_gives_one_entry_each() -> None:
    value = sign(["a", "b"], TS, BODY)
    assert value == f"v1={signature('a', TS, BODY)} v1={signature('b', TS, BODY)}"


def test_good_delivery_returns_the_event() -> None:
    event = verify(SECRET, headers(sign(SECRET, TS, BODY)), BODY, now=at(TS))
    assert event == json.loads(BODY)


def test_wrong_secret() -> None:
    with pytest.raises(SignatureMismatchError, match="no v1= signature matches this secret"):
        verify("rf_whsec_other", headers(sign(SECRET, TS, BODY)), BODY, now=at(TS))


def test_body_changed_by_one_byte() -> None:
    changed = BODY.replace(b"0001", b"0002")
    assert len(changed) == len(BODY) and changed != BODY
    with pytest.raises(SignatureMismatchError):
        verify(SECRET, headers(sign(SECRET, TS, BODY)), changed, now=at(TS))


def test_timestamp_changed_breaks_the_signature() -> None:
    with pytest.raises(SignatureMismatchError):
        verify(SECRET, headers(sign(SECRET, TS, BODY), TS + 1), BODY, now=at(TS))


@pytest.mark.parametrize(("skew", "message"), [(301, "301 s old"), (-301, "301 s in the future")])
def test_timestamp_301_s_away_is_rejected(skew: int, message: str) -> None:
    with pytest.raises(TimestampOutOfToleranceError, match=message):
        verify(SECRET, headers(sign(SECRET, TS, BODY)), BODY, now=at(TS + skew))


@pytest.mark.parametrize("skew", [300, -300, 0])
def test_timestamp_exactly_300_s_away_is_accepted(skew: int) -> None:
    assert verify(SECRET, headers(sign(SECRET, TS, BODY)), BODY, now=at(TS + skew))


def test_tolerance_is_a_parameter() -> None:
    sig = sign(SECRET, TS, BODY)
    assert verify(SECRET, headers(sig), BODY, now=at(TS + 10), tolerance=10)
    with pytest.raises(TimestampOutOfToleranceError, match="11 s old"):
        verify(SECRET, headers(sig), BODY, now=at(TS + 11), tolerance=10)


def test_a_fraction_over_the_tolerance_does_not_read_as_within_it() -> None:
    with pytest.raises(TimestampOutOfToleranceError, match=r"300\.5 s old"):
        verify(SECRET, headers(sign(SECRET, TS, BODY)), BODY, now=at(TS + 300.5))


def test_a_forged_stale_delivery_is_reported_as_a_signature_mismatch() -> None:
    """The signature is checked first: a timestamp error means an authentic delivery."""
    with pytest.raises(SignatureMismatchError):
        verify(SECRET, headers("v1=" + "0" * 64), BODY, now=at(TS + 10_000))


def test_two_entries_with_the_second_matching() -> None:
    sig = f"v1={signature('rf_whsec_old', TS, BODY)} v1={signature(SECRET, TS, BODY)}"
    assert verify(SECRET, headers(sig), BODY, now=at(TS))


def test_other_schemes_and_junk_entries_are_ignored() -> None:
    sig = f"v0=abc v1=zz-not-hex v1=\u00e9\u00e9 v1={signature(SECRET, TS, BODY)}"
    assert verify(SECRET, headers(sig), BODY, now=at(TS))


def test_several_secrets_any_one_matching() -> None:
    sig = sign(SECRET, TS, BODY)
    assert verify(["rf_whsec_new", SECRET], headers(sig), BODY, now=at(TS))
    with pytest.raises(SignatureMismatchError, match="any of the 2 secrets"):
        verify(["rf_whsec_a", "rf_whsec_b"], headers(sig), BODY, now=at(TS))


@pytest.mark.parametrize("secrets", [[], [""], ""])
def test_no_secret_is_a_programming_error(secrets: Any) -> None:
    with pytest.raises(ValueError):
        verify(secrets, headers(sign(SECRET, TS, BODY)), BODY, now=at(TS))


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"Runflow-Timestamp": str(TS)}, "Runflow-Signature"),
        ({"Runflow-Signature": "v1=ab"}, "Runflow-Timestamp"),
        ({"Runflow-Signature": "  ", "Runflow-Timestamp": str(TS)}, "Runflow-Signature"),
        ({}, "Runflow-Timestamp"),
    ],
)
def test_missing_headers(given: dict[str, str], missing: str) -> None:
    with pytest.raises(MissingHeaderError, match=f"missing {missing} header") as info:
        verify(SECRET, given, BODY, now=at(TS))
    assert info.value.header == missing


@pytest.mark.parametrize(
    "ts", ["12.5", "abc", "1_745_234_442", "+1745234442", "-5", "\u0661\u0662"]
)
def test_non_integer_timestamp_is_malformed(ts: str) -> None:
    with pytest.raises(MalformedHeaderError, match="not unix seconds"):
        verify(SECRET, headers(sign(SECRET, ts, BODY), ts), BODY, now=at(TS))


@pytest.mark.parametrize("sig", ["abc123", "v2=abc", "v1=", "sha256=" + "0" * 64])
def test_signature_without_a_v1_entry_is_malformed(sig: str) -> None:
    with pytest.raises(MalformedHeaderError, match="no v1= entry"):
        verify(SECRET, headers(sig), BODY, now=at(TS))


def test_header_names_are_case_insensitive() -> None:
    sig = sign(SECRET, TS, BODY)
    for given in (
        {"runflow-signature": sig, "runflow-timestamp": str(TS)},
        {"RUNFLOW-SIGNATURE": sig, "RuNfLoW-TiMeStAmP": str(TS)},
    ):
        assert verify(SECRET, given, BODY, now=at(TS))


def test_header_values_are_stripped() -> None:
    sig = sign(SECRET, TS, BODY)
    assert verify(SECRET, headers(f"  {sig} ", f" {TS} "), BODY, now=at(TS))


@pytest.mark.parametrize(
    ("body", "message"), [(b"not json", "not JSON"), (b"[1, 2]", "not a JSON object")]
)
def test_authentic_body_that_is_not_an_object(body: bytes, message: str) -> None:
    with pytest.raises(MalformedBodyError, match=message):
        verify(SECRET, headers(sign(SECRET, TS, body)), body, now=at(TS))


@pytest.mark.parametrize(("ts", "digits"), [("9" * 5000, 5000), ("1" * 13, 13)])
def test_an_absurdly_long_timestamp_is_malformed_even_when_signed(ts: str, digits: int) -> None:
    # 5,000 digits used to reach int() and raise ValueError: Exceeds the limit (4300 digits).
    with pytest.raises(MalformedHeaderError, match=f"not unix seconds: {digits} digits"):
        verify(SECRET, headers(sign(SECRET, ts, BODY), ts), BODY, now=at(TS))


def test_a_twelve_digit_timestamp_is_only_out_of_tolerance() -> None:
    ts = "9" * 12
    with pytest.raises(TimestampOutOfToleranceError, match="in the future"):
        verify(SECRET, headers(sign(SECRET, ts, BODY), ts), BODY, now=at(TS))


def nested(depth: int) -> bytes:
    return b'{"a":' * (depth - 1) + b"[1]" + b"}" * (depth - 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"event":"batch.succeeded","items_total":NaN}', r"non-finite number \(NaN\)"),
        (b'{"cost":Infinity}', r"non-finite number \(Infinity\)"),
        (b'{"cost":[-Infinity]}', r"non-finite number \(-Infinity\)"),
        (b'{"cost":1e999}', r"non-finite number \(1e999"),
        (b'{"cost":-1E400}', r"non-finite number \(-1E400"),
        (b'{"n":' + b"7" * 5000 + b"}", "a number of 5000 characters"),
        (b'{"n":0.' + b"1" * 100 + b"}", "a number of 102 characters"),
        (nested(65), "nested deeper than 64 levels"),
        (nested(100_000), "nested deeper than 64 levels"),
        (b'{"event":"\\udc00x"}', "lone surrogate"),
        (b'{"\\ud800":1}', "lone surrogate"),
        (b'{"event":"caf\xe9"}', "not UTF-8"),
        ('{"event":"x"}'.encode("utf-16"), "not UTF-8"),
        (b'\xef\xbb\xbf{"event":"x"}', "not JSON"),
    ],
)
def test_an_authentic_body_that_is_not_strict_json(body: bytes, message: str) -> None:
    with pytest.raises(MalformedBodyError, match=message):
        verify(SECRET, headers(sign(SECRET, TS, body)), body, now=at(TS))


def test_strict_json_still_takes_what_a_sender_means() -> None:
    body = (
        b'{"a":' * 63
        + b'{"n":-12.5e3,"big":12345678901234567890,"s":"caf\xc3\xa9 \\u00e9 \\ud83d\\ude00"}'
        + b"}" * 63
    )
    event = verify(SECRET, headers(sign(SECRET, TS, body)), body, now=at(TS))
    inner = event
    for _ in range(63):
        inner = inner["a"]
    assert inner == {"n": -12500.0, "big": 12345678901234567890, "s": "caf\u00e9 \u00e9 \U0001f600"}


def test_every_error_is_a_verification_error() -> None:
    for cls in (
        MissingHeaderError,
        MalformedHeaderError,
        MalformedBodyError,
        TimestampOutOfToleranceError,
        SignatureMismatchError,
    ):
        assert issubclass(cls, WebhookVerificationError)


@pytest.mark.parametrize(
    ("request_id", "expected"),
    [
        (f"{UUID}-1", UUID),
        (f"{UUID}-12", UUID),
        (UUID, UUID),
        # A UUID whose last group is all digits is still left whole.
        ("01984d10-7c2b-7f3e-8b4d-123456789012", "01984d10-7c2b-7f3e-8b4d-123456789012"),
        ("01984d10-7c2b-7f3e-8b4d-123456789012-3", "01984d10-7c2b-7f3e-8b4d-123456789012"),
        (f" {UUID}-2\n", UUID),
        ("uuid-12", "uuid"),
        ("abc-1-2", "abc-1"),
        ("abc-x", "abc-x"),
        (f"{UUID}-\u0663", f"{UUID}-\u0663"),  # only ASCII digits are an attempt number
    ],
)
def test_delivery_id_strips_only_a_trailing_attempt(request_id: str, expected: str) -> None:
    assert delivery_id(request_id) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a", ["a"]), ("a b", ["a", "b"]), (" a, b ,c\n", ["a", "b", "c"]), ("", []), (" , ", [])],
)
def test_parse_secrets(text: str, expected: list[str]) -> None:
    assert parse_secrets(text) == expected


# --- runflow webhook verify ---------------------------------------------------


def _stdin(monkeypatch: pytest.MonkeyPatch, body: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))


def test_cli_verify_prints_the_event(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    now = int(time.time())
    monkeypatch.setenv("HOOK_SECRET", f"rf_whsec_old {SECRET}")
    _stdin(monkeypatch, BODY)
    result = cli(
        "webhook", "verify", "--secret-env", "HOOK_SECRET",
        "--timestamp", str(now), "--signature", sign(SECRET, now, BODY),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert json.loads(result.out) == json.loads(BODY)
    assert result.err == ""


@pytest.mark.parametrize(
    ("timestamp_shift", "signature_of", "reason"),
    [
        (0, "rf_whsec_wrong", r"no v1= signature matches this secret and body"),
        # The CLI reads the clock a moment after the test did: 400 s or a little more.
        (-400, SECRET, r"Runflow-Timestamp is 40\d(\.\d+)? s old \(tolerance 300 s\)"),
    ],
)
def test_cli_verify_rejects_with_the_reason(
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    timestamp_shift: int,
    signature_of: str,
    reason: str,
) -> None:
    import time

    ts = int(time.time()) + timestamp_shift
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    _stdin(monkeypatch, BODY)
    result = cli(
        "webhook", "verify", "--secret-env", "HOOK_SECRET",
        "--timestamp", str(ts), "--signature", sign(signature_of, ts, BODY),
    )  # fmt: skip
    assert result.code == 1
    assert result.out == ""
    assert re.search(reason, result.err), result.err


@pytest.mark.parametrize(
    ("ts", "body", "reason"),
    [
        ("9" * 5000, BODY, "Runflow-Timestamp is not unix seconds: 5000 digits"),
        (None, b'{"event":"batch.failed","id":"b","cost":NaN}', r"non-finite number \(NaN\)"),
        (None, b"[1, 2]", "not a JSON object"),
    ],
)
def test_cli_verify_a_malformed_delivery_exits_2_with_the_reason(
    cli: Any, monkeypatch: pytest.MonkeyPatch, ts: str | None, body: bytes, reason: str
) -> None:
    import time

    ts = ts or str(int(time.time()))
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    _stdin(monkeypatch, body)
    result = cli(
        "webhook", "verify", "--secret-env", "HOOK_SECRET",
        "--timestamp", ts, "--signature", sign(SECRET, ts, body),
    )  # fmt: skip
    assert result.code == 2, result.err
    assert result.out == ""
    assert re.search(f"Error: malformed delivery: .*{reason}", result.err), result.err
    assert "Traceback" not in result.err and "unexpected" not in result.err


def test_cli_verify_tolerance_option(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    ts = int(time.time()) - 400
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    _stdin(monkeypatch, BODY)
    result = cli(
        "webhook", "verify", "--secret-env", "HOOK_SECRET", "--tolerance", "600",
        "--timestamp", str(ts), "--signature", sign(SECRET, ts, BODY),
    )  # fmt: skip
    assert result.code == 0, result.err


def test_cli_verify_without_the_secret_is_a_usage_error(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    _stdin(monkeypatch, BODY)
    result = cli(
        "webhook", "verify", "--secret-env", "HOOK_SECRET",
        "--timestamp", str(TS), "--signature", sign(SECRET, TS, BODY),
    )  # fmt: skip
    assert result.code == 2
    assert "HOOK_SECRET" in result.err
    monkeypatch.setenv("HOOK_SECRET", " , ")
    assert cli("webhook", "verify", "--secret-env", "HOOK_SECRET",
               "--timestamp", str(TS), "--signature", "v1=00").code == 2  # fmt: skip


def test_cli_verify_in_a_shell_pipeline(tmp_path: Any) -> None:
    """The real process: raw bytes from stdin, event on stdout, reason on stderr."""
    import os
    import time

    ts = int(time.time())
    body = VECTORS[4][2]  # whitespace and a trailing newline must survive stdin
    env = {**os.environ, "HOOK_SECRET": SECRET}
    command = [sys.executable, "-m", "runflow_cli", "webhook", "verify",
               "--secret-env", "HOOK_SECRET", "--timestamp", str(ts)]  # fmt: skip
    good = subprocess.run(
        [*command, "--signature", sign(SECRET, ts, body)],
        input=body, capture_output=True, env=env, timeout=30,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout) == {"event": "batch.failed", "id": "b"}
    bad = subprocess.run(
        [*command, "--signature", sign(SECRET, ts, body)],
        input=body.rstrip(b"\n"), capture_output=True, env=env, timeout=30,
    )  # fmt: skip
    assert bad.returncode == 1
    assert b"no v1= signature matches" in bad.stderr and bad.stdout == b""
