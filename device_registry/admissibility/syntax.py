"""Reading the parts of one statement: words, parameter lists, `if` conditions, numbers, quotations.

Every pattern is possessive (`*+`, `++`) and every helper makes a bounded number of passes over the
text it is given, so reading a statement is linear in its length.
"""

from __future__ import annotations

import re

from device_registry.admissibility.violations import parse_error

NAME = r"[A-Za-z_][A-Za-z0-9_]*+"

FIRST_WORD = re.compile(r"\s*+(\$\d++|" + NAME + ")")
OPERAND = re.compile(r"\s*+(?:\$(\d++)|(" + NAME + r")(?:\s*+\[\s*+(\d++)\s*+\])?)\s*+\Z")
VERSION = re.compile(r"OPENQASM\s++(\d++)(?:\.(\d++))?\Z")
QASM2_DECLARATION = re.compile(r"(qreg|creg)\s++(" + NAME + r")\s*+\[\s*+(\d++)\s*+\]\Z")
QASM3_DECLARATION = re.compile(
    r"(qubit|bit)(?:\s*+\[\s*+(\d++)\s*+\])?\s++(" + NAME + r")\s*+(?:=\s*+(measure\b.*+))?\Z", re.DOTALL
)
ASSIGN_MEASURE = re.compile(r"(" + NAME + r"(?:\s*+\[\s*+\d++\s*+\])?)\s*+=\s*+(measure\b.*+)\Z", re.DOTALL)
INPUT_NAME = r"[^\W\d]\w*+"
"""An OpenQASM 3 identifier, Unicode letters included: `qiskit.qasm3.dumps` names the elements of a
ParameterVector θ `_θ_0_`, `_θ_1_`, ..."""
INPUT = re.compile(r"input\s++float\s*+\[\s*+64\s*+\]\s++(" + INPUT_NAME + r")\s*+\Z")
"""A PUB circuit's parameter, as `qiskit.qasm3.dumps` declares one: `input float[64] theta;`."""
GATE_HEADER = re.compile(r"\s*+(gate|opaque)\s++(" + NAME + ")")
STRING = re.compile(r""""[^"\n]*+"|'[^'\n]*+'""")
ELSE = re.compile(r"else\b")
CONDITION = {word: re.compile(word + r"\s*+(?=\()") for word in ("if", "while", "switch")}
IF = CONDITION["if"]
LITERAL = re.compile(r"true|false|\d++")
CASE = re.compile(r"case\s++\d++(?:\s*+,\s*+\d++)*+")
FOR = re.compile(
    r"for\s++u?+int(?:\s*+\[\s*+\d++\s*+\])?+\s++" + NAME + r"\s++in\s*+"
    r"\[\s*+(-?+\d++)\s*+:\s*+(-?+\d++)\s*+(?::\s*+(-?+\d++)\s*+)?+\]\s*+"
)
"""`for uint i in [start:end]` or `[start:step:end]` (integer literals, the end included)."""
DURATION = re.compile(
    r"\s*+((?:\d[\d_]*+(?:\.[\d_]*+)?+|\.\d[\d_]*+)(?:[eE][+-]?+\d++)?+)\s*+(dt|ns|us|\u00b5s|ms|s)\s*+"
)
"""An OpenQASM 3 duration literal, as the runner's importer reads one: its number and its unit."""
_BRACKETS = {"(": re.compile(r"(\()|\)"), "[": re.compile(r"(\[)|\]")}
_NON_BLANK = re.compile(r"\S")

LARGEST_DIGITS = 18
"""A number with more significant digits than this is refused rather than converted."""


def first_word(text: str) -> str | None:
    m = FIRST_WORD.match(text)
    return m.group(1) if m else None


def has_modifier(stmt: str) -> bool:
    """An `@` before any parenthesis: `ctrl @ x`, `inv @ pow(2) @ sx`."""
    paren = stmt.find("(")
    return stmt.find("@", 0, len(stmt) if paren < 0 else paren) >= 0


def after_gate_name(stmt: str, name: str) -> str | None:
    """The operand text after `name` and its optional `(parameters)`; None if the parentheses do not close."""
    rest = stmt[len(name) :].lstrip()
    if not rest.startswith("("):
        return rest
    close = matching(rest, 0)
    return None if close is None else rest[close + 1 :]


def strip_designator(rest: str) -> str | None:
    """`[120ns] $0` -> ` $0`; None without a closed designator."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    close = matching(rest, 0)
    return None if close is None else rest[close + 1 :]


def split_condition(stmt: str, word: str) -> tuple[str, str] | None:
    """`word (cond) rest` -> (`cond`, ` rest`); None if it is not well formed."""
    m = CONDITION[word].match(stmt)
    if m is None:
        return None
    close = matching(stmt, m.end())
    return None if close is None else (stmt[m.end() + 1 : close], stmt[close + 1 :])


def unwrap(text: str) -> str:
    """`text` without surrounding blanks and the parentheses around all of it: `( (c[0]) )` -> `c[0]`.
    One pass from both ends (no copy per layer), so a mebibyte of parentheses costs a mebibyte."""
    i, j = 0, len(text) - 1
    while True:
        while i <= j and text[i].isspace():
            i += 1
        while j >= i and text[j].isspace():
            j -= 1
        if i < j and text[i] == "(" and text[j] == ")":
            i, j = i + 1, j - 1
            continue
        return text[i : j + 1]


def for_iterations(header: str) -> int:
    """How many times the body of the `for` loop `header` runs (OpenQASM 3 ranges include their end)."""
    m = FOR.fullmatch(header)
    if m is None:
        raise parse_error(
            f"a for loop takes an integer variable over a literal range, such as 'for uint i in [0:9]' or "
            f"'[0:2:8]' (a set in braces is not read): {clip(header)!r}"
        )
    start, end = _signed(m.group(1)), _signed(m.group(2))
    step = 1
    if m.group(3) is not None:  # [start:step:end]
        step, end = end, _signed(m.group(3))
    if step == 0:
        raise parse_error(f"a for loop's step cannot be 0: {clip(header)!r}")
    span = end - start if step > 0 else start - end
    return span // abs(step) + 1 if span >= 0 else 0


def _signed(text: str) -> int:
    return -number(text[1:]) if text.startswith("-") else number(text)


def matching(text: str, start: int) -> int | None:
    """Offset of the bracket that closes the one at `start`."""
    depth = 0
    for m in _BRACKETS[text[start]].finditer(text, start):
        if m.group(1) is not None:
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return m.start()
    return None


def number(digits: str) -> int:
    """The value of a decimal literal; one too long to be any index or size is a parse error."""
    significant = digits.lstrip("0")
    if len(significant) > LARGEST_DIGITS:
        raise parse_error(f"the number {clip(digits, 24)} is too large")
    return int(significant or "0")


def clip(text: str, limit: int = 60) -> str:
    """`text` on one line, whitespace collapsed, at most `limit` characters: for messages."""
    first = _NON_BLANK.search(text)
    if first is None:
        return ""
    end = first.start() + 4 * limit
    one_line = " ".join(text[first.start() : end].split())
    more = end < len(text) and _NON_BLANK.search(text, end) is not None
    if more or len(one_line) > limit:
        return one_line[: limit - 1] + "…"
    return one_line
