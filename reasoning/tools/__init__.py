"""Tools for ReAct: the :class:`Tool` protocol, the :class:`ToolRegistry` and the built-in tools."""

from .base import Tool, ToolError, ToolExample
from .calculator import CALCULATOR, Calculator
from .client import ClientTool, ToolStep
from .registry import FINAL_ANSWER, ToolOutcome, ToolRegistry, default_registry
from .unit_convert import UnitConvert

__all__ = [
    "CALCULATOR",
    "FINAL_ANSWER",
    "Calculator",
    "ClientTool",
    "Tool",
    "ToolError",
    "ToolExample",
    "ToolOutcome",
    "ToolRegistry",
    "ToolStep",
    "UnitConvert",
    "default_registry",
]
