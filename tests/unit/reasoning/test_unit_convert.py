from fractions import Fraction

import pytest

from quorum.reasoning.tools import ToolError, UnitConvert
from quorum.reasoning.tools.unit_convert import convert


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"value": 5, "from_unit": "mile", "to_unit": "kilometer"}, "8.04672 kilometer"),
        ({"value": 1, "from_unit": "foot", "to_unit": "inch"}, "12 inch"),
        ({"value": 100, "from_unit": "celsius", "to_unit": "fahrenheit"}, "212 fahrenheit"),
        ({"value": -40, "from_unit": "fahrenheit", "to_unit": "celsius"}, "-40 celsius"),
        ({"value": 0, "from_unit": "kelvin", "to_unit": "celsius"}, "-273.15 celsius"),
        ({"value": 1.5, "from_unit": "hour", "to_unit": "minute"}, "90 minute"),
        ({"value": 2, "from_unit": "kg", "to_unit": "lbs"}, "4.4092452437 pound"),
        ({"value": 3, "from_unit": "Miles", "to_unit": "feet"}, "15840 foot"),
        ({"value": 1, "from_unit": "gallon", "to_unit": "liter"}, "3.785411784 liter"),
        ({"value": 2, "from_unit": "week", "to_unit": "day"}, "14 day"),
    ],
)
async def test_conversions(arguments: dict[str, object], expected: str) -> None:
    assert await UnitConvert().run(arguments) == expected


def test_round_trip_is_exact() -> None:
    assert convert(convert(Fraction(37), "celsius", "fahrenheit"), "fahrenheit", "celsius") == 37


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"value": 1, "from_unit": "meter", "to_unit": "kilogram"}, "cannot convert length"),
        ({"value": 1, "from_unit": "parsec", "to_unit": "meter"}, "unknown unit 'parsec'"),
        ({"value": "1", "from_unit": "meter", "to_unit": "foot"}, "arguments must be"),
        ({"value": True, "from_unit": "meter", "to_unit": "foot"}, "arguments must be"),
        ({"value": 1}, "arguments must be"),
        ({"value": float("inf"), "from_unit": "meter", "to_unit": "foot"}, "finite"),
        ({"value": float("nan"), "from_unit": "meter", "to_unit": "foot"}, "finite"),
        ({"value": 10**200, "from_unit": "meter", "to_unit": "foot"}, "finite"),
    ],
)
async def test_bad_arguments(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ToolError, match=message):
        await UnitConvert().run(arguments)
