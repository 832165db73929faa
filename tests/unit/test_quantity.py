from decimal import Decimal

import pytest

from modeldeploy.api.quantity import parse_quantity

pytestmark = pytest.mark.core


@pytest.mark.parametrize(
    "value,expected",
    [
        ("500m", Decimal("0.5")), ("2Gi", Decimal(2 * 1024**3)), ("1k", Decimal(1000)), (3, Decimal(3)),
        ("1.5", Decimal("1.5")), ("1e3", Decimal(1000)), (".5", Decimal("0.5")), ("100Mi", Decimal(100 * 1024**2)),
    ],
)
def test_parses_kubernetes_quantities(value, expected):
    assert parse_quantity(value) == expected


@pytest.mark.parametrize("value", ["two", "1GB", "", "1 Gi", "Gi"])
def test_rejects_what_kubernetes_rejects(value):
    with pytest.raises(ValueError):
        parse_quantity(value)
