"""The API's answers as typed views: parsed once, tolerant of what the contract leaves open."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from runflow_cli.api.answers import (
    BatchView,
    ItemView,
    RunView,
    count,
    money,
    pick_final,
    stage_urls,
)
from runflow_cli.names import url_basename

CDN = "https://cdn.test/r1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), ("4", 4), (2.0, 2), (True, 0), (None, 0), ("x", 0), ([1], 0), (float("inf"), 0)],
)
def test_counts_read_numbers_only(value: Any, expected: int) -> None:
    assert count(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.410000", Decimal("0.41")), (None, 0), ("free", 0), ({"x": 1}, 0), (True, 0)],
)
def test_money_reads_decimal_strings(value: Any, expected: Decimal) -> None:
    assert money(value) == expected


@pytest.mark.parametrize(
    ("url", "basename"),
    [
        (f"{CDN}/result_00001_.webp?sig=a#f", "result_00001_.webp"),
        (f"{CDN}/result_00001_.webp/", ""),  # the manifest's reading since 0.1.0: no name
        ("https://cdn.test", ""),
        ("https://cdn.test/a%2Fb.webp", "a/b.webp"),  # decoded after splitting
        ("https://cdn.test/shirt%20blue.jpg", "shirt blue.jpg"),
    ],
)
def test_one_url_basename_for_names_finals_and_stages(url: str, basename: str) -> None:
    assert url_basename(url) == basename


def test_the_final_is_the_result_url_wherever_it_is_in_the_list() -> None:
    urls = [f"{CDN}/bg_remover_00001_.webp", f"{CDN}/result_00001_.webp?sig=1"]
    assert pick_final(urls) == urls[1]
    assert pick_final(reversed(urls)) == urls[1]
    assert pick_final([f"{CDN}/result_00001_.webp/"]) is None
    item = ItemView(status="succeeded", urls=tuple(urls))
    assert item.final_url == urls[1] and stage_urls(item.urls) == [urls[0]]


def test_a_terminal_batch_is_parsed_once_into_its_items() -> None:
    batch = BatchView.parse(
        {
            "id": "b1",
            "status_code": "partial_succeeded",
            "items_total": 2,
            "items_succeeded": 1,
            "items_failed": 1,
            "cost": "0.410000",
            "output": {
                "items": [
                    {"sequence_index": 1, "status_code": "failed",
                     "input": {"image_url": "https://img.test/b.jpg"},
                     "error": {"kind": "upstream_failed", "message": "no"}},
                    {"sequence_index": 0, "status_code": "succeeded", "run_id": "r0",
                     "client_ref": "SKU-A", "output": {"image_urls": [f"{CDN}/result_1.webp"]}},
                    "not an item",
                ]
            },
        }
    )  # fmt: skip
    assert batch.terminal and batch.spent == Decimal("0.41") and batch.progress == (1, 1, 0)
    assert batch.items is not None and len(batch.items) == 3
    assert batch.unreadable == (batch.items[2],) and not batch.sound
    assert batch.items[2].problem == "the entry is 'not an item', not an object"
    failed = batch.find_item(sequence_index=1, run_id=None)
    assert failed is not None and not failed.succeeded
    assert (failed.error_kind, failed.error_message, failed.image_url) == (
        "upstream_failed", "no", "https://img.test/b.jpg",
    )  # fmt: skip
    assert batch.find_item(sequence_index=None, run_id="r0") is batch.items[1]
    assert batch.find_item(sequence_index=0, run_id="r-other") is batch.items[1]
    assert batch.find_item(sequence_index=None, run_id=None) is None
    assert batch.find_item(sequence_index=None, run_id="r-unknown") is None
    assert batch.items[1].client_ref == "SKU-A"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"output": "nope", "items_total": "x"}, "items_total is 'x', not a count"),
        ({"output": "nope"}, "output is 'nope', not an object"),
        ({"cost": {"x": 1}}, "cost is an object, not a decimal string"),
        ({"status_code": 5, "items": "no"}, "status_code is 5, not a string"),
        ({"output": {"items": {"0": {}}}}, "output.items is an object, not a list"),
        ([], "the answer is a list of 0, not an object"),
        (None, "the answer is null, not an object"),
    ],
)
def test_fields_of_the_wrong_type_read_as_absent_and_are_named(body: Any, problem: str) -> None:
    batch = BatchView.parse(body)
    assert not batch.terminal and batch.spent == 0 and batch.run_ids() == {}
    assert batch.items is None and not batch.sound
    assert problem in batch.describe_problems(), batch.describe_problems()


def test_counts_or_a_terminal_status_finish_a_batch() -> None:
    assert BatchView.parse({"items_total": 2, "items_succeeded": 1, "items_cancelled": 1}).terminal
    assert BatchView.parse({"status_code": "cancelled"}).terminal
    assert not BatchView.parse({"status_code": "running", "items_total": 0}).terminal
    assert not BatchView.parse({"items_total": 2, "items_succeeded": True}).terminal


def test_the_create_answer_gives_run_ids_by_sequence_index() -> None:
    answer = {
        "id": "b1",
        "items": [{"sequence_index": 1, "run_id": "r1"}, {"sequence_index": True}],
    }
    assert BatchView.parse(answer, created=True).run_ids() == {1: "r1"}
    assert BatchView.parse(answer).run_ids() == {}  # a poll's items are not read


def test_a_run_and_its_webhook_read_alike() -> None:
    polled = RunView.parse({"id": "r1", "status": "succeeded", "duration_ms": 1200,
                            "output": {"image_urls": [f"{CDN}/result_1.webp"]}})  # fmt: skip
    event = RunView.parse({"event": "run.completed", "run_id": "r1", "status": "succeeded",
                           "output": {"image_urls": [f"{CDN}/result_1.webp"]}})  # fmt: skip
    for run in (polled, event):
        assert run.id == "r1" and run.terminal and run.item.final_url == f"{CDN}/result_1.webp"
    assert polled.duration_ms == 1200 and event.duration_ms is None
    failed = RunView.parse({"id": "r2", "status": "failed", "output": None})
    assert failed.terminal and failed.item.urls == () and failed.status == "failed"
    assert RunView.parse({}).status == "unknown" and not RunView.parse({}).terminal
