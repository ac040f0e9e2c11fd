"""The spend cap's arithmetic: prices learned from bills, never underestimated."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest
from helpers import make_items

from runflow_cli.api.prices import parse_prices
from runflow_cli.batch.spend import PriceBook, SpendCap, bill

ONE = ("background_removal",)
TWO = ("tag_removal", "background_removal")
FOUR = ("model_removal", "tag_removal", "product_isolation", "background_removal")


def items(n: int, elements: tuple[str, ...] = TWO) -> list[int]:
    """The element counts of ``n`` items of ``elements``."""
    return [len(replace(item, elements=elements).elements) for item in make_items(n)]


def test_a_batch_of_one_element_count_gives_its_price_exactly() -> None:
    book = PriceBook()
    assert book.estimate(2) is None
    assert book.learn(D("1.23"), items(3))
    assert book.estimate(2) == D("0.41")


def test_a_mixed_batch_bounds_each_count_by_the_whole_bill() -> None:
    book = PriceBook()
    # 2 x 0.23 + 1 x 0.41 = 0.87: each count is bounded as if it alone was billed.
    assert book.learn(D("0.87"), items(2, ONE) + items(1, TWO))
    assert book.estimate(1) == D("0.435") and book.estimate(2) == D("0.87")
    assert book.estimate(1) >= D("0.23") and book.estimate(2) >= D("0.41")
    book.learn(D("0.46"), items(2, ONE))  # a pure batch then tells the truth
    assert book.estimate(1) == D("0.23")


def test_an_unseen_count_costs_the_most_per_element_seen() -> None:
    book = PriceBook({1: D("0.23"), 2: D("0.41")})
    assert book.estimate(4) == D("0.92")  # 4 x 0.23 >= the real 0.77
    assert book.estimate(4) >= D("0.05") + 4 * D("0.18")
    assert PriceBook({2: D("0.41")}).estimate(1) == D("0.41")  # never below an item seen


def test_nothing_learned_from_a_bill_without_successes() -> None:
    book = PriceBook()
    assert not book.learn(D("0"), [])
    assert not book.learn(None, items(2))
    assert book.learned == {}


def test_a_configured_price_never_lowers_what_the_bills_showed() -> None:
    assert parse_prices("0.41") == {0: D("0.41")}
    assert parse_prices("1=0.23, 2=0.41") == {1: D("0.23"), 2: D("0.41")}
    for bad in ("", "x", "2=", "-1", "2=-0.1", "nan", "a=1"):
        with pytest.raises(ValueError):
            parse_prices(bad)
    book = PriceBook({2: D("0.41")}, parse_prices("0.1"))
    assert book.estimate(2) == D("0.41")  # learned 0.41 beats a configured 0.1
    assert book.estimate(4) == D("0.82")  # and the learned per-element price scales up
    assert PriceBook({}, parse_prices("0.5")).estimate(3) == D("0.5")
    assert PriceBook({2: D("0.41")}, {2: D("0.6")}).estimate(2) == D("0.6")


def test_bills_that_cannot_be_believed_teach_nothing() -> None:
    book = PriceBook()
    assert not book.learn(D("0"), items(2))  # succeeded items do not cost nothing
    assert bill("NaN") is None and bill("-5") is None and bill({"x": 1}) is None
    assert bill("Infinity") is None and bill(True) is None and bill("0.410000") == D("0.41")
    assert book.learned == {}


def test_the_cap_probes_then_cuts_batches_to_what_fits() -> None:
    cap = SpendCap(D("2"), PriceBook())
    rows = items(10)
    assert cap.fit(rows, D(0)) == 1  # no price: a probe of one
    cap.reserve("probe", rows[:1])
    assert cap.fit(rows, D(0)) == 0  # its cost is unknown: wait for it
    assert cap.settle("probe", D("0.41"), rows[:1])
    assert cap.fit(rows, D("0.41")) == 3  # 0.41 + 3 x 0.41 = 1.64; a fourth passes 2
    cap.reserve("b1", rows[:3])
    assert cap.fit(rows, D("0.41")) == 0  # 1.23 reserved: nothing more fits
    cap.release("b1")
    assert cap.fit(rows, D("1.64")) == 0


def test_a_probe_that_taught_nothing_is_followed_by_a_larger_one() -> None:
    cap = SpendCap(D("100"), PriceBook())
    rows = items(20)
    sizes = []
    for n in range(4):
        size = cap.fit(rows, D(0))
        sizes.append(size)
        cap.reserve(f"p{n}", rows[:size])
        assert not cap.settle(f"p{n}", D(0), [])  # every item failed
    assert sizes == [1, 2, 4, 8]


def test_rows_without_a_price_wait_behind_rows_with_one() -> None:
    cap = SpendCap(D("100"), PriceBook({2: D("0.41")}))
    mixed = items(2) + items(2, FOUR)
    assert cap.fit(mixed, D(0)) == 4  # four elements: priced from two (0.82), not unknown
