"""Who counts as one of the shop's top 20 % of customers by revenue (the Pareto rule on the card)."""

from __future__ import annotations

from decimal import Decimal

from storage.cases import in_top_share


def test_the_single_biggest_customer_of_ten_is_in_the_top_share() -> None:
    assert in_top_share(at_least=1, paying=10, revenue=Decimal("500"))


def test_the_third_biggest_of_ten_is_not_in_the_top_fifth() -> None:
    assert in_top_share(at_least=2, paying=10, revenue=Decimal("300"))
    assert not in_top_share(at_least=3, paying=10, revenue=Decimal("200"))


def test_customers_who_all_spent_the_same_are_not_all_top() -> None:
    assert not in_top_share(at_least=10, paying=10, revenue=Decimal("59.90"))


def test_a_small_shop_still_has_one_top_customer_and_no_revenue_is_never_top() -> None:
    assert in_top_share(at_least=1, paying=3, revenue=Decimal("10"))
    assert not in_top_share(at_least=0, paying=3, revenue=Decimal("0"))
