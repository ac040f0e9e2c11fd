"""Answers checked at the edge: the JSON parser's limits, each field's type and range,
matching entries to rows, and the client's size cap. Plain units, and respx for the client."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import httpx
import pytest
import respx
from badapi import gzip_bomb
from helpers import make_items

from runflow_cli.api import safe_json
from runflow_cli.api.answers import BatchView, ItemView, RunView
from runflow_cli.api.client import DEFAULT_MAX_ANSWER_BYTES, RunflowClient
from runflow_cli.batch.flight import Flight
from runflow_cli.batch.schedule import Timing
from runflow_cli.errors import (
    AnswerTooLargeError,
    BadAnswerError,
    CreateOutcomeUnknownError,
    ServerError,
)

BASE = "https://api.test"
CDN = "https://cdn.test"


# --- the parser ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"items_total": NaN}', "non-finite number (NaN)"),
        ('{"items_total": Infinity}', "non-finite number (Infinity)"),
        ("[-Infinity]", "non-finite number (-Infinity)"),
        ('{"cost": 1e400}', "too large for a float"),
        ('{"n": ' + "9" * 50 + "}", "a number of 50 characters"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels"),
        ("[" * 200 + "]" * 200, "nested deeper than 64 levels"),
        ("[" * 100_000, "nested deeper than 64 levels"),  # unclosed: the backstop says so
    ],
)
def test_the_parser_refuses_what_json_would_take(text: str, reason: str) -> None:
    with pytest.raises(
        safe_json.UnsafeJSONError, match=reason.replace("(", r"\(").replace(")", r"\)")
    ):
        safe_json.loads(text)


def _nested(levels: int, text: str) -> Any:
    """``levels`` arrays, each holding ``text`` twice beside the next (a string misread
    at every level would turn the brackets around it into text, or text into brackets)."""
    value: Any = "end"
    for _ in range(levels):
        value = [text, text, value]
    return value


@pytest.mark.parametrize(
    "text",
    [
        "\\",  # a backslash: in JSON an escaped one, and the quote after it ends the string
        'say "]]"',  # quotes: escaped in JSON, the string goes on past them
        '\\"]]',  # a backslash, then a quote
        "]]]]",  # closers as text: they must not close the levels around them
        "\\u005d",  # the text of an escape, not the escape
    ],
)
def test_strings_of_escapes_and_brackets_hide_no_depth(text: str) -> None:
    """The depth check drops strings by their quotes, so escapes must not shift them: a
    string at every level does not hide a nesting too deep, nor refuse one at the limit."""
    with pytest.raises(safe_json.UnsafeJSONError, match="nested deeper than 64 levels"):
        safe_json.loads(json.dumps({"message": text, "items": _nested(200, text)}))
    ok = {"message": text, "items": _nested(60, text)}
    assert safe_json.loads(json.dumps(ok).encode()) == ok


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16", "utf-32-be", "utf-32"])
def test_an_answer_in_utf_16_or_32_is_checked_for_depth_too(encoding: str) -> None:
    """``json`` reads UTF-16 and UTF-32 bytes as well: the depth check reads them too
    (in them a quote and a backslash are not bytes of their own)."""
    deep = json.dumps({"message": 'say "]]"', "items": _nested(200, 'say "]]"')})
    with pytest.raises(safe_json.UnsafeJSONError, match="nested deeper than 64 levels"):
        safe_json.loads(deep.encode(encoding))
    ok = {"message": 'say "]]"', "items": _nested(60, "\\")}
    assert safe_json.loads(json.dumps(ok).encode(encoding)) == ok


def test_the_parser_takes_ordinary_answers_and_brackets_in_strings() -> None:
    nested: Any = "end"
    for _ in range(64):
        nested = [nested]
    assert safe_json.loads(json.dumps(nested)) == nested  # 64 levels: the limit itself
    tricky = {"message": "[[[[" * 1000 + '\\"{{' * 1000, "n": 3, "cost": "0.41", "x": 1.5}
    assert safe_json.loads(json.dumps(tricky).encode()) == tricky
    with pytest.raises(ValueError) as malformed:
        safe_json.loads('{"a": [1, 2}')
    assert not isinstance(malformed.value, safe_json.UnsafeJSONError)


# --- the views ------------------------------------------------------------------------


def entry(**over: Any) -> dict[str, Any]:
    found = {"sequence_index": 0, "run_id": "r0", "status_code": "succeeded",
             "output": {"image_urls": [f"{CDN}/result_0.webp"]}}  # fmt: skip
    return {**found, **over}


@pytest.mark.parametrize(
    ("over", "problem"),
    [
        ({"error": "boom"}, "error is 'boom', not an object"),
        ({"error": {"kind": ["x"]}}, "error.kind is a list of 1, not a string"),
        ({"sequence_index": 10**30}, "sequence_index is 1000000000000000000000000000000, not"),
        ({"sequence_index": -1}, "sequence_index is -1, not an index"),
        ({"sequence_index": True}, "sequence_index is true, not an index"),
        ({"sequence_index": 1.0}, "sequence_index is 1.0, not an index"),
        ({"run_id": {"id": 1}}, "run_id is an object, not a string"),
        ({"run_id": "r" * 300}, "run_id is a string of 300 characters, not"),
        ({"status_code": 3}, "status_code is 3, not a string"),
        ({"output": "nope"}, "output is 'nope', not an object"),
        ({"output": {"image_urls": ["ok", 3]}}, "output.image_urls is a list of 2, not a list"),
        ({"output": {"image_urls": ["u"] * 65}}, "output.image_urls is a list of 65, not"),
        ({"input": {"image_url": 7}}, "input.image_url is 7, not a string"),
        ({"client_ref": 12}, "client_ref is 12, not a string"),
    ],
)
def test_an_entry_with_a_field_of_the_wrong_type_or_range_is_unreadable(
    over: dict[str, Any], problem: str
) -> None:
    item = ItemView.parse(entry(**over))
    assert item.problem is not None and item.problem.startswith(problem), item.problem


def test_statuses_are_read_in_any_case_and_long_messages_are_cut() -> None:
    item = ItemView.parse(entry(status_code="SUCCEEDED", error={"message": "x" * 5000}))
    assert item.problem is None and item.succeeded and item.terminal
    assert item.error_message == "x" * 2000
    batch = BatchView.parse({"status_code": "Partial_Succeeded"})
    assert batch.terminal and batch.status == "partial_succeeded" and batch.status_known
    assert not BatchView.parse({"status_code": "done"}).status_known
    assert not BatchView.parse({"status_code": "done"}).terminal
    assert BatchView.parse({}).status_known  # no status: the counts decide


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"items_total": -1}, "items_total is -1, not a count"),
        ({"items_total": 10**12}, "items_total is 1000000000000, not a count"),
        ({"items_succeeded": True}, "items_succeeded is true, not a count"),
        ({"items_failed": 1.5}, "items_failed is 1.5, not a count"),
        ({"cost": "-0.41"}, "cost is '-0.41', not a decimal string"),
        ({"cost": "free"}, "cost is 'free', not a decimal string"),
        ({"cost": [1]}, "cost is a list of 1, not a decimal string"),
        ({"id": ["b1"]}, "id is a list of 1, not a string"),
        ({"event": 5}, "event is 5, not a string"),
        ({"output": {"items": "nope"}}, "output.items is 'nope', not a list"),
    ],
)
def test_a_batch_field_of_the_wrong_type_or_range_is_a_problem(
    body: dict[str, Any], problem: str
) -> None:
    batch = BatchView.parse(body)
    assert not batch.sound and batch.problems[0].startswith(problem), batch.problems


def test_numbers_in_the_forms_the_contract_allows_are_read() -> None:
    batch = BatchView.parse(
        {"id": 17, "items_total": "3", "items_succeeded": 2.0, "items_failed": 1, "cost": 0.41}
    )
    assert batch.sound and batch.id == "17" and batch.progress == (2, 1, 0) and batch.terminal
    assert str(batch.spent) == "0.41"


def test_a_create_answer_keeps_only_sound_run_ids() -> None:
    created = BatchView.parse(
        {
            "id": "b1",
            "items": [
                {"sequence_index": 0, "run_id": "r0"},
                {"sequence_index": 10**30, "run_id": "r-huge"},
                {"sequence_index": 1, "run_id": ["r1"]},
                "x",
            ],
        },
        created=True,
    )
    assert created.run_ids() == {0: "r0"}


def test_find_item_never_returns_an_unreadable_entry() -> None:
    batch = BatchView.parse({"output": {"items": [entry(error="boom"), entry(sequence_index=1)]}})
    assert batch.find_item(sequence_index=0, run_id="r0") is batch.items[1]  # type: ignore[index]
    assert batch.find_item(sequence_index=0, run_id=None) is None


def test_a_run_answer_names_its_problems() -> None:
    run = RunView.parse({"id": "r1", "status": "SUCCEEDED", "duration_ms": -5, "error": "x"})
    assert run.terminal and run.problems == (
        "duration_ms is -5, not a count from 0 to 1000000000",
        "error is 'x', not an object",
    )
    assert RunView.parse([1]).problems == ("the answer is a list of 1, not an object",)


# --- matching entries to rows -----------------------------------------------------------


def flight(n: int) -> Flight:
    items = make_items(n)
    return Flight("b1", 1, dict(enumerate(items)), Timing(1.0, 0.0),
                  by_run_id={f"r{i}": item for i, item in enumerate(items)})  # fmt: skip


def views(*entries: Any) -> list[ItemView]:
    return [ItemView.parse(e) for e in entries]


def test_a_row_is_matched_once_whatever_the_answer_repeats() -> None:
    matching = flight(2).match(
        views(entry(), entry(), entry(), entry(sequence_index=1, run_id="r1"))
    )
    assert matching.clean and [item.index for item, _ in matching.found] == [0, 1]


def test_entries_that_disagree_make_their_row_unreadable() -> None:
    matching = flight(2).match(views(entry(), entry(status_code="failed", output=None)))
    assert [item.index for item, _ in matching.found] == []
    assert {i: why for i, (_, why) in matching.unreadable.items()} == {
        0: "two entries for it disagree"
    }
    assert not matching.clean and "SKU S0 (line 2): two entries" in matching.describe()


def test_unreadable_or_unfinished_entries_are_tied_to_their_row_when_they_can_be() -> None:
    matching = flight(4).match(
        views(
            entry(error="boom"),
            entry(sequence_index=1, run_id="r1", status_code="done"),
            entry(sequence_index=2, run_id="r2", status_code="running"),
            entry(sequence_index=10**30, run_id="nobody"),
            "x",
            entry(sequence_index=3, run_id="r3"),
        )
    )
    reasons = {i: why for i, (_, why) in matching.unreadable.items()}
    assert reasons == {
        0: "error is 'boom', not an object",
        1: "the entry's status 'done' is not one this client knows",
        2: "the entry is still running in a finished batch",
    }
    assert [item.index for item, _ in matching.found] == [3]
    assert [s.split(":")[0] for s in matching.strays] == ["output.items[3]", "output.items[4]"]


def test_an_out_of_range_index_falls_back_to_the_run_id() -> None:
    matching = flight(2).match(views(entry(sequence_index=7, run_id="r1")))
    assert [item.index for item, _ in matching.found] == [1]


# --- the client ----------------------------------------------------------------------


@pytest.fixture
def mock() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def client(**kw: Any) -> RunflowClient:
    return RunflowClient("rf_test_k", BASE, sleep=lambda s: None, **kw)


def test_a_poll_answer_that_cannot_be_read_is_raised_once_with_the_view(mock: Any) -> None:
    route = mock.get("/v1/batches/b1").respond(200, json={"id": "b1", "output": "nope"})
    with client() as api, pytest.raises(BadAnswerError) as info:
        api.get_batch("b1")
    assert route.call_count == 1  # not retried by the client: the poll loop decides
    assert "output is 'nope', not an object" in str(info.value) and info.value.status == 200
    assert isinstance(info.value.answer, BatchView) and info.value.answer.id == "b1"
    assert info.value.exit_code == 4


@pytest.mark.parametrize(
    "body", [b'{"id": "b1", "items_total": NaN}', b"[" * 100_000 + b"]" * 100_000]
)
def test_json_the_parser_refuses_is_a_bad_answer_or_an_unknown_create(
    mock: Any, body: bytes
) -> None:
    get = mock.get("/v1/batches/b1").respond(200, content=body)
    post = mock.post("/v1/models/runflow/dyver-removal/batches").respond(201, content=body)
    with client() as api:
        with pytest.raises(BadAnswerError):
            api.get_batch("b1")
        with pytest.raises(CreateOutcomeUnknownError, match="may exist"):
            api.create_batch([{"image_url": "https://img.test/a.jpg"}], idempotency_key="k")
    assert get.call_count == 1 and post.call_count == 1


def test_an_answer_over_the_size_limit_is_refused(mock: Any) -> None:
    assert DEFAULT_MAX_ANSWER_BYTES == 8 * 1024 * 1024
    body = json.dumps({"id": "b1", "pad": "x" * 2000}).encode()
    mock.get("/v1/batches/b1").respond(200, content=body)
    with client(max_answer_bytes=1000) as api, pytest.raises(AnswerTooLargeError) as info:
        api.get_batch("b1")
    assert "larger than the limit of 1000 bytes" in str(info.value)
    with client(max_answer_bytes=len(body)) as api:
        assert api.get_batch("b1").id == "b1"  # exactly at the limit is fine


def raw(status: int, body: bytes, encoding: str) -> httpx.MockTransport:
    """Answers every request with ``body`` as sent on the wire (decoded only as read)."""
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    return httpx.MockTransport(
        lambda request: httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))
    )


def test_the_size_limit_counts_decoded_bytes() -> None:
    bomb = gzip_bomb(64 * 1024 * 1024)  # 64 KB that expands to 64 MiB
    assert len(bomb) < 100_000
    api = client(max_answer_bytes=1 << 20, transport=raw(200, bomb, "gzip"))
    with api, pytest.raises(AnswerTooLargeError):
        api.get_batch("b1")
    # 5xx with a bomb: a server error like any other, retried by the client
    api = client(max_answer_bytes=1 << 20, transport=raw(503, bomb, "gzip"))
    with api, pytest.raises(ServerError, match="larger than the limit"):
        api.get_batch("b2")


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as the RFC says
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw, as some servers send it
        ("identity", lambda data: data),
    ],
)
def test_compressed_answers_are_read_whole(encoding: str, compress: Any) -> None:
    answer = {"id": "b1", "status_code": "queued", "pad": "y" * 300_000}
    content = compress(json.dumps(answer).encode())
    with client(transport=raw(200, content, encoding)) as api:
        assert api.get_batch("b1").raw == answer


def test_a_body_that_cannot_be_decoded_is_a_server_error() -> None:
    api = client(max_retries=0, transport=raw(200, b"not gzip at all", "gzip"))
    with api, pytest.raises(ServerError, match="could not be decoded"):
        api.get_batch("b1")


def test_a_run_answer_that_cannot_be_read_is_raised(mock: Any) -> None:
    mock.get("/v1/runs/r1").respond(200, json={"id": "r1", "status": "running", "output": 3})
    with client() as api, pytest.raises(BadAnswerError, match="output is 3, not an object"):
        api.get_run("r1")
