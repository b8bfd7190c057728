"""The ``unit_convert`` tool: exact conversion between units of length, mass, volume, time and temperature."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .base import ToolError, ToolExample
from .calculator import MAX_DIGITS, format_number


@dataclass(frozen=True)
class Unit:
    """``value`` in this unit is ``value * scale + offset`` in the dimension's base unit."""

    dimension: str
    scale: Fraction
    offset: Fraction = Fraction(0)


_INCH = Fraction("0.0254")
_POUND = Fraction("0.45359237")
_GALLON = Fraction("3.785411784")  # US liquid gallon, in liters
_KELVIN_AT_ZERO_CELSIUS = Fraction("273.15")

UNITS: dict[str, Unit] = {
    "millimeter": Unit("length", Fraction(1, 1000)),
    "centimeter": Unit("length", Fraction(1, 100)),
    "meter": Unit("length", Fraction(1)),
    "kilometer": Unit("length", Fraction(1000)),
    "inch": Unit("length", _INCH),
    "foot": Unit("length", 12 * _INCH),
    "yard": Unit("length", 36 * _INCH),
    "mile": Unit("length", 63360 * _INCH),
    "milligram": Unit("mass", Fraction(1, 1000)),
    "gram": Unit("mass", Fraction(1)),
    "kilogram": Unit("mass", Fraction(1000)),
    "ounce": Unit("mass", _POUND * 1000 / 16),
    "pound": Unit("mass", _POUND * 1000),
    "milliliter": Unit("volume", Fraction(1, 1000)),
    "liter": Unit("volume", Fraction(1)),
    "gallon": Unit("volume", _GALLON),
    "second": Unit("time", Fraction(1)),
    "minute": Unit("time", Fraction(60)),
    "hour": Unit("time", Fraction(3600)),
    "day": Unit("time", Fraction(86400)),
    "week": Unit("time", Fraction(604800)),
    "celsius": Unit("temperature", Fraction(1), _KELVIN_AT_ZERO_CELSIUS),
    "fahrenheit": Unit("temperature", Fraction(5, 9), _KELVIN_AT_ZERO_CELSIUS - Fraction(32 * 5, 9)),
    "kelvin": Unit("temperature", Fraction(1)),
}
ALIASES = {
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "km": "kilometer",
    "in": "inch",
    "ft": "foot",
    "feet": "foot",
    "yd": "yard",
    "mg": "milligram",
    "g": "gram",
    "kg": "kilogram",
    "oz": "ounce",
    "lb": "pound",
    "lbs": "pound",
    "ml": "milliliter",
    "l": "liter",
    "gal": "gallon",
    "s": "second",
    "sec": "second",
    "min": "minute",
    "h": "hour",
    "hr": "hour",
    "c": "celsius",
    "°c": "celsius",
    "f": "fahrenheit",
    "°f": "fahrenheit",
    "k": "kelvin",
}


def convert(value: Fraction, from_unit: str, to_unit: str) -> Fraction:
    """``value`` in ``from_unit`` expressed in ``to_unit``; raises :class:`ToolError` for unknown or mixed units."""
    source, target = _unit(from_unit), _unit(to_unit)
    if source.dimension != target.dimension:
        raise ToolError(f"cannot convert {source.dimension} ({from_unit}) to {target.dimension} ({to_unit})")
    return (value * source.scale + source.offset - target.offset) / target.scale


class UnitConvert:
    """Converts a value between two units of the same dimension (see :data:`UNITS`)."""

    name = "unit_convert"
    description = (
        f"Converts a value between units of length, mass, volume, time or temperature. Units: {', '.join(UNITS)}."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "value": {"type": "number"},
            "from_unit": {"type": "string", "enum": list(UNITS)},
            "to_unit": {"type": "string", "enum": list(UNITS)},
        },
        "required": ["value", "from_unit", "to_unit"],
        "additionalProperties": False,
    }
    example = ToolExample(
        question="A trail is 5 miles long. How long is it in kilometers?",
        arguments={"value": 5, "from_unit": "mile", "to_unit": "kilometer"},
        output="8.04672 kilometer",
        answer="8.04672",
        thought="5 miles asked in kilometers: convert from mile to kilometer.",
    )

    async def run(self, arguments: Mapping[str, Any]) -> str:
        value, from_unit, to_unit = arguments.get("value"), arguments.get("from_unit"), arguments.get("to_unit")
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not isinstance(from_unit, str)
            or not isinstance(to_unit, str)
        ):
            raise ToolError('arguments must be {"value": <number>, "from_unit": "<unit>", "to_unit": "<unit>"}')
        if abs(value) >= 10**MAX_DIGITS or not math.isfinite(value):
            raise ToolError(f"value must be a finite number below 1e{MAX_DIGITS}")
        result = convert(Fraction(repr(value)) if isinstance(value, float) else Fraction(value), from_unit, to_unit)
        return f"{format_number(result)} {_canonical_name(to_unit)}"


def _canonical_name(name: str) -> str:
    key = name.strip().casefold()
    key = ALIASES.get(key, key)
    if key not in UNITS and key.endswith("s") and key[:-1] in UNITS:
        key = key[:-1]  # plurals: "miles", "hours"
    if key not in UNITS:
        raise ToolError(f"unknown unit '{name}'; known units: {', '.join(UNITS)}")
    return key


def _unit(name: str) -> Unit:
    return UNITS[_canonical_name(name)]
