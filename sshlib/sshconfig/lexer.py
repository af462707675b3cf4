"""Tokens, patterns and numbers exactly as OpenSSH's ssh_config reader sees them.

Each function follows the OpenSSH 9.2 routine named in its docstring
(misc.c, match.c), so a line splits, a pattern matches and a number parses
here as it does in ``ssh``.  Pure functions: no I/O.
"""

from __future__ import annotations

import re

__all__ = [
    "WHITESPACE",
    "QuoteError",
    "strdelim",
    "argv_split",
    "match_pattern",
    "match_pattern_list",
    "convtime",
    "scan_scaled",
    "a2port",
    "atoi",
]

WHITESPACE = " \t\r\n"


class QuoteError(ValueError):
    """A quoted argument is not closed before the end of the line."""


def strdelim(text: str | None) -> tuple[str | None, str | None]:
    """misc.c strdelim(): the next token (split on whitespace or one ``=``) and the rest.

    Returns (token, rest); token None means an unclosed double quote, rest
    None means the line is used up.
    """
    if text is None:
        return None, None
    match = re.search(r'[ \t\r\n"=]', text)
    if match is None:
        return text, None
    i = match.start()
    if text[i] == '"':
        text = text[:i] + text[i + 1:]
        close = text.find('"', i)
        if close < 0:
            return None, None
        token = text[:close]
        rest = text[close + 1:].lstrip(WHITESPACE)
        return token, rest
    token = text[:i]
    was_equals = text[i] == "="
    rest = text[i + 1:].lstrip(WHITESPACE)
    if rest.startswith("=") and not was_equals:
        rest = rest[1:].lstrip(WHITESPACE)
    return token, rest


def argv_split(text: str, terminate_on_comment: bool = True) -> list[str]:
    """misc.c argv_split(): shell-like words with ' and " quotes and backslash escapes."""
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        if terminate_on_comment and text[i] == "#":
            break
        quote = ""
        arg: list[str] = []
        while i < n:
            c = text[i]
            if c == "\\":
                nxt = text[i + 1] if i + 1 < n else ""
                if nxt and (nxt in "'\"\\" or (not quote and nxt == " ")):
                    i += 1
                    arg.append(nxt)
                else:
                    arg.append(c)
            elif not quote and c in " \t":
                break
            elif not quote and c in "\"'":
                quote = c
            elif quote and c == quote:
                quote = ""
            else:
                arg.append(c)
            i += 1
        if i >= n and quote:
            raise QuoteError("invalid quotes")
        args.append("".join(arg))
    return args


_PATTERN_CACHE: dict[str, re.Pattern[str]] = {}


def match_pattern(string: str, pattern: str) -> bool:
    """match.c match_pattern(): ``*`` and ``?`` wildcards, everything else literal, case kept."""
    regex = _PATTERN_CACHE.get(pattern)
    if regex is None:
        parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
        regex = re.compile("".join(parts), re.DOTALL)
        if len(_PATTERN_CACHE) < 4096:
            _PATTERN_CACHE[pattern] = regex
    return regex.fullmatch(string) is not None


def match_pattern_list(string: str, patterns: str, dolower: bool = False) -> int:
    """match.c match_pattern_list(): 1 on a match, -1 on a negated match, 0 otherwise."""
    got_positive = 0
    for sub in patterns.split(","):
        negated = sub.startswith("!")
        if negated:
            sub = sub[1:]
        if dolower:
            sub = sub.lower()
        if match_pattern(string, sub):
            if negated:
                return -1
            got_positive = 1
    return got_positive


_TIME_UNITS = {"": 1, "s": 1, "S": 1, "m": 60, "M": 60, "h": 3600, "H": 3600,
               "d": 86400, "D": 86400, "w": 604800, "W": 604800}


def convtime(text: str) -> int:
    """misc.c convtime(): ``90``, ``1h30m``, ``2d`` -> seconds; -1 if malformed."""
    if not text:
        return -1
    total = 0
    pos = 0
    for match in re.finditer(r"(\d+)([sSmMhHdDwW]?)", text):
        if match.start() != pos:
            return -1
        total += int(match.group(1)) * _TIME_UNITS[match.group(2)]
        pos = match.end()
        if total > 0x7FFFFFFF:
            return -1
    return total if pos == len(text) else -1


_SCALE = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40,
          "P": 1 << 50, "E": 1 << 60}


def scan_scaled(text: str) -> int | None:
    """OpenBSD scan_scaled() for whole numbers: ``1G``, ``500M``, ``4096``; None if bad."""
    match = re.fullmatch(r"\s*(\d+)([bBkKmMgGtTpPeE]?)", text)
    if match is None:
        return None
    value = int(match.group(1)) * _SCALE[match.group(2).upper()]
    return value if value < 1 << 63 else None


def a2port(text: str) -> int:
    """misc.c a2port(): 1-65535, 0 for "0", -1 if not a port."""
    if not re.fullmatch(r"\d+", text or ""):
        return -1
    value = int(text)
    return value if value <= 65535 else -1


def atoi(text: str | None) -> int | None:
    """misc.c atoi_err(): a whole number 0..INT_MAX, None if malformed or missing."""
    if text is None or not re.fullmatch(r"\s*[+-]?\d+", text):
        return None
    value = int(text)
    return value if 0 <= value < 1 << 31 else None
