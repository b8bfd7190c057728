"""Static bounds on what an output constraint (a grammar) may cost, checked before it reaches an engine.

vLLM compiles every constraint with xgrammar inside the EngineCore process, one
at a time: a constraint that takes minutes to compile stalls every constrained
request queued behind it, and its compile can grow the engine's memory until the
node's memory monitor kills replicas. So each user input that becomes a grammar
is checked here first, by one function per kind, reused by every path that
builds a grammar (``sampling.constraint``, chat ``tools``, OpenAI
``response_format``/``tools``, ReAct ``client_tools`` and ``steps``):

- :func:`check_json_schema` — a JSON schema: at most ``max_json_bytes`` UTF-8
  bytes (the tester's 1 MB schema), nesting at most ``max_depth`` objects/arrays
  deep (checked by a scan *before* parsing, so a 5,000-deep document never
  reaches Python's recursive JSON parser), at most ``max_schema_properties``
  properties over all ``properties``/``patternProperties`` maps (xgrammar's
  compile time grows faster than linearly with them: 500 took 0.6 s, 1,000 took
  3.3 s, 2,000 more than 30 s on this project's CPU hosts), ``enum`` lists bound
  like choices, length/count keywords (``maxLength``, ``minItems``, ...) at most
  ``max_repetition`` (``maxLength: 100000`` took 6.4 s), and every ``pattern``
  checked as a regex.
- :func:`check_regex` — a regex: at most ``max_regex_chars`` characters, parsed
  (Python's ``re`` syntax, a superset of what xgrammar accepts), groups nested at
  most ``max_depth`` deep, no unbounded repetition of a body that can itself be
  one unbounded repetition (``(a+)+``, ``(a*b?)*``, ``(.*)*``: the classic
  exponential-ambiguity shape; ``(\\s*,\\s*\\w+)*`` is fine because its body has
  two required parts), and the product of repetition counts along any nesting
  path at most ``max_repetition`` (``((a{1,50}){1,50}){1,50}`` expands to
  125,000 copies).
- :func:`check_choice` — a choice list: at most ``max_choices`` non-empty
  values and ``max_choice_bytes`` bytes in all (a 100,000-entry list was still
  compiling after 240 s; 5,000 short ones compile in 0.2 s).
- :func:`check_json_value` — a JSON value replayed into a grammar-decoded
  conversation (tool-call ``arguments_json``): size and depth bounds only.

These bounds are cheap, deterministic and explainable; they cannot prove a
grammar compiles fast. What passes them is compiled once more, under a time
budget and outside the engine, by :mod:`quorum.cluster.grammar_check`.

Every error is :class:`InvalidArgument` naming the request field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from .config import ConstraintsConfig
from .errors import InvalidArgument
from .types import OutputConstraint

_REPEATS = frozenset({sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, getattr(sre_parse, "POSSESSIVE_REPEAT", None)})
_UNBOUNDED = sre_parse.MAXREPEAT
_COUNT_KEYWORDS = (
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "minContains",
    "maxContains",
)


def json_depth(text: str) -> int:
    """How deep objects and arrays nest in ``text`` (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def check_json_value(field: str, text: str, limits: ConstraintsConfig) -> Any:
    """The parsed JSON ``text``, refused when too large, nested too deeply or not JSON."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > limits.max_json_bytes:
        raise InvalidArgument(
            field, f"is {size} bytes; the limit is {limits.max_json_bytes} (constraints.max_json_bytes)"
        )
    depth = json_depth(text)
    if depth > limits.max_depth:
        raise InvalidArgument(
            field, f"nests {depth} levels deep; the limit is {limits.max_depth} (constraints.max_depth)"
        )
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(field, f"not valid JSON: {exc}") from None


def check_json_schema(field: str, text: str, limits: ConstraintsConfig) -> dict[str, Any]:
    """The parsed schema (a JSON object), refused when it breaks a bound (see the module docstring)."""
    schema = check_json_value(field, text, limits)
    if not isinstance(schema, dict):
        raise InvalidArgument(field, "must be a JSON object (a JSON Schema)")
    check_schema_cost(field, schema, limits)
    return schema


def check_schema_cost(field: str, schema: dict[str, Any], limits: ConstraintsConfig, *, patterns: bool = True) -> None:
    """The bounds of :func:`check_json_schema` on an already parsed schema; ``patterns`` False skips the regex
    checks (a grammar the server built: its user parts were checked on their own, its own patterns are trusted)."""
    properties = 0
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        for key in ("properties", "patternProperties"):
            declared = node.get(key)
            if isinstance(declared, dict):
                properties += len(declared)
                if key == "patternProperties" and patterns:
                    for pattern in declared:
                        check_regex(f"{field}", pattern, limits, what="a patternProperties key")
        if properties > limits.max_schema_properties:
            raise InvalidArgument(
                field,
                f"declares more than {limits.max_schema_properties} properties "
                "(constraints.max_schema_properties): the grammar would take too long to compile",
            )
        pattern = node.get("pattern")
        if isinstance(pattern, str) and patterns:
            check_regex(field, pattern, limits, what="a pattern")
        enum = node.get("enum")
        if isinstance(enum, list):
            check_choice(field, [json.dumps(value) for value in enum], limits, what="an enum")
        for keyword in _COUNT_KEYWORDS:
            count = node.get(keyword)
            if isinstance(count, int | float) and not isinstance(count, bool) and count > limits.max_repetition:
                raise InvalidArgument(
                    field, f"{keyword} {count:g} is over {limits.max_repetition} (constraints.max_repetition)"
                )
        stack.extend(node.values())


def check_choice(field: str, choices: Sequence[str], limits: ConstraintsConfig, what: str = "") -> None:
    """A choice list: non-empty values, at most ``max_choices`` of them and ``max_choice_bytes`` in all."""
    subject = f"{what} " if what else ""
    if len(choices) > limits.max_choices:
        raise InvalidArgument(
            field, f"{subject}has {len(choices)} values; the limit is {limits.max_choices} (constraints.max_choices)"
        )
    size = sum(len(choice.encode("utf-8", "surrogatepass")) for choice in choices)
    if size > limits.max_choice_bytes:
        raise InvalidArgument(
            field, f"{subject}holds {size} bytes; the limit is {limits.max_choice_bytes} (constraints.max_choice_bytes)"
        )


def check_regex(field: str, pattern: str, limits: ConstraintsConfig, what: str = "") -> None:
    """A regex: length, syntax, group depth, no nested unbounded repetition, bounded repetition product."""
    subject = f"{what} " if what else ""
    if len(pattern) > limits.max_regex_chars:
        raise InvalidArgument(
            field,
            f"{subject}is {len(pattern)} characters; the limit is {limits.max_regex_chars} "
            "(constraints.max_regex_chars)",
        )
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as exc:
        raise InvalidArgument(field, f"{subject}is not a valid regex: {exc}") from None
    except RecursionError:
        raise InvalidArgument(field, f"{subject}nests groups too deeply (constraints.max_depth)") from None
    problem = _regex_problem(list(parsed), 1, 0, limits)
    if problem:
        raise InvalidArgument(field, f"{subject}{problem}")


def _regex_problem(items: list[Any], product: int, depth: int, limits: ConstraintsConfig) -> str:
    """Why a parsed regex (sre items) is too costly, or an empty string."""
    if depth > limits.max_depth:
        return f"nests groups more than {limits.max_depth} deep (constraints.max_depth)"
    for op, arg in items:
        if op in _REPEATS:
            low, high, body = arg
            factor = max(low, 1) if high == _UNBOUNDED else high
            inner = product * factor
            if inner > limits.max_repetition:
                return (
                    f"repeats up to {inner} times along one nesting path; the limit is {limits.max_repetition} "
                    "(constraints.max_repetition)"
                )
            if (high == _UNBOUNDED or high > 1) and _can_be_one_unbounded(list(body)):
                return (
                    "repeats a body that is itself an unbounded repetition (like (a+)+): "
                    "rewrite it without nested unbounded quantifiers"
                )
            problem = _regex_problem(list(body), inner, depth + 1, limits)
        else:
            problem = ""
            for sub in _children(op, arg):
                problem = problem or _regex_problem(sub, product, depth + 1, limits)
        if problem:
            return problem
    return ""


def _children(op: Any, arg: Any) -> list[list[Any]]:
    """The sub-patterns of a non-repeat sre item (groups, alternations, lookarounds, conditionals)."""
    if op is sre_parse.SUBPATTERN:
        return [list(arg[3])]
    if op is sre_parse.BRANCH:
        return [list(branch) for branch in arg[1]]
    if op is getattr(sre_parse, "ATOMIC_GROUP", None):
        return [list(arg)]
    if op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
        return [list(arg[1])]
    if op is sre_parse.GROUPREF_EXISTS:
        return [list(part) for part in arg[1:] if part is not None]
    return []


def _can_be_one_unbounded(items: list[Any]) -> bool:
    """True when a sequence can match as just one unbounded repetition (every other part optional)."""
    required = [(op, arg) for op, arg in items if not (op in _REPEATS and arg[0] == 0)]
    if len(required) > 1:
        return False
    for op, arg in required or items:
        if op in _REPEATS and arg[1] == _UNBOUNDED:
            return True
        if op not in _REPEATS and any(_can_be_one_unbounded(sub) for sub in _children(op, arg)):
            return True
    return False


def constraint_field(constraint: OutputConstraint) -> str:
    """The request field errors about ``constraint`` name (its origin, plus the kind for sampling.constraint)."""
    if constraint.source != "sampling.constraint":
        return constraint.source
    if constraint.json_schema is not None:
        return "sampling.constraint.json_schema"
    if constraint.regex is not None:
        return "sampling.constraint.regex"
    return "sampling.constraint.choice"


def check_constraint(constraint: OutputConstraint, limits: ConstraintsConfig) -> None:
    """Apply the bounds of the constraint's kind; raises :class:`InvalidArgument` naming its field."""
    field = constraint_field(constraint)
    if constraint.json_schema is not None and constraint.source != "sampling.constraint":
        # A grammar the server built around user parts that passed these bounds on their own (tool schemas):
        # its size and depth include the server's wrapping; what it declares in all is bounded as a whole.
        try:
            built = json.loads(constraint.json_schema)
        except (ValueError, RecursionError) as exc:
            raise InvalidArgument(field, f"the grammar built from it is not valid JSON: {exc}") from None
        check_schema_cost(field, built if isinstance(built, dict) else {}, limits, patterns=False)
    elif constraint.json_schema is not None:
        check_json_schema(field, constraint.json_schema, limits)
    if constraint.regex is not None:
        if not constraint.regex:
            raise InvalidArgument(field, "must not be empty")
        check_regex(field, constraint.regex, limits)
    if constraint.choice is not None:
        if not constraint.choice or any(not c for c in constraint.choice):
            raise InvalidArgument(field, "needs at least one non-empty value")
        check_choice(field, constraint.choice, limits)
