"""Tools for ReAct: the :class:`Tool` protocol, the :class:`ToolRegistry` and the built-in tools."""

from .base import Tool, ToolError, ToolExample
from .calculator import CALCULATOR, Calculator
from .registry import FINAL_ANSWER, ToolOutcome, ToolRegistry, default_registry
from .unit_convert import UnitConvert

__all__ = [
    "CALCULATOR",
    "FINAL_ANSWER",
    "Calculator",
    "Tool",
    "ToolError",
    "ToolExample",
    "ToolOutcome",
    "ToolRegistry",
    "UnitConvert",
    "default_registry",
]
