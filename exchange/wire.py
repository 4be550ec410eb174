"""What arrives from outside, checked once for every edge.

Every JSON body or WebSocket frame is read by :func:`json_parse` — the fast order route,
DRF (``JsonParser`` in ``REST_FRAMEWORK``) and the consumers — and every URL path and
query parameter passes ``BadInputMiddleware``. They refuse, with a 400 ``invalid``, what
the code behind cannot take whatever the field:

- a NUL character anywhere: PostgreSQL refuses it in text, so it used to surface as a
  500 from whichever query met it first;
- a lone surrogate (``"\\ud800"``), which cannot be encoded as UTF-8 for the database or
  for the answer;
- nesting deeper than ``MAX_DEPTH``: Python's JSON reader recurses, and so does the code
  that walks the result (DRF's error flattening, ``json.dumps``);
- ``NaN``, ``Infinity``, numbers too large for a float, which PostgreSQL's jsonb and
  every amount refuse, and integers outside 64 bits, which no column can hold.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.http import HttpResponseBadRequest, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from rest_framework import parsers

from exchange.errors import AppError

MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


class _OutOfRange(ValueError):
    pass


def _refuse_constant(name: str):
    raise _OutOfRange(f"{name} is not a number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _OutOfRange(f"{text[:20]} is too large")
    return value


# Integers keep the C scanner's own parsing (a Python callback per integer doubled the cost
# of reading an order); they are walked afterwards only when the text holds a run of 19
# digits, the shortest integer past 64 bits. Floats are rare in what the exchange reads, so
# each is checked as it is read. Strings are walked only when the text holds a \u escape,
# the one way a NUL or a surrogate gets past a strict reader of strict UTF-8.
_decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)
_LONG_NUMBER = re.compile(r"[0-9]{19}")
_INT64 = range(-(2**63), 2**63)


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored or sent on, or None."""
    if "\x00" in text:
        return "Contains a NUL character (\\u0000), which cannot be stored."
    if not text.isascii() and _SURROGATE.search(text):
        return "Contains a lone UTF-16 surrogate, which is not a character."
    return None


class UnstorableValue(AppError):
    """Valid JSON with a string or number no store or answer can take; ``value`` is what
    was read, so an edge can still pick out a request id to answer to."""

    def __init__(self, detail: str, *, fields: dict, value: Any):
        super().__init__("invalid", detail, fields=fields)
        self.value = value


def whole_number(raw: str, *, digits: int = 18) -> int | None:
    """``raw`` as a whole number if it is written in at most ``digits`` ASCII digits, else
    None. (``str.isdigit`` also takes "²" and other digits that ``int`` refuses, and ``int``
    refuses more than 4,300 digits: neither may reach ``int`` from a query.)"""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= digits else None


def invalid(what: str, detail: str, fields: dict | None = None) -> AppError:
    return AppError("invalid", f"{what} {detail}", fields=fields or {"non_field_errors": f"{what} {detail}"})


def _too_deep(data) -> bool:
    """Whether ``data`` nests deeper than MAX_DEPTH, level by level (no recursion), looking
    only at containers: about 0.5 ms for a batch of 1,000 orders, a third of reading it."""
    level = [data] if isinstance(data, (dict, list)) else []
    for _ in range(MAX_DEPTH):
        below = []
        for container in level:
            for item in container.values() if type(container) is dict else container:
                if type(item) is dict or type(item) is list:
                    below.append(item)
        if not below:
            return False
        level = below
    return True


def _value_problem(data) -> tuple[str, str] | None:
    """(where, why) for the first unstorable string (key or value) or integer in ``data``; or None."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if problem := text_problem(value):
                return where or "non_field_errors", problem
        elif type(value) is int:
            if value not in _INT64:
                return where or "non_field_errors", "An integer outside the 64-bit range."
        elif isinstance(value, dict):
            for key, item in value.items():
                if problem := text_problem(key):
                    return where or "non_field_errors", f"A key: {problem[0].lower()}{problem[1:]}"
                stack.append((item, f"{where}.{key}" if where else key))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))
    return None


def json_parse(raw: bytes | str, *, what: str = "The body") -> Any:
    """The JSON value of ``raw`` (UTF-8 bytes or text), or AppError 400 ``invalid``.

    Cheap for an ordinary order (a few hundred bytes): the depth is measured only when
    there are more brackets than ``MAX_DEPTH``, and values are walked only when the text
    could hold a NUL, a surrogate or an integer out of range.
    """
    if isinstance(raw, str):
        text = raw
        if not text.isascii() and _SURROGATE.search(text):
            raise invalid(what, "contains a lone UTF-16 surrogate, which is not a character.")
    else:
        try:
            # Strict UTF-8: json.loads on bytes would let encoded surrogates through.
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise invalid(what, "is not valid UTF-8.") from None
    try:
        data = _decoder.decode(text)
    except RecursionError:  # the reader's own guard, far below what the C stack could take
        raise invalid(what, f"nests deeper than {MAX_DEPTH} levels.") from None
    except _OutOfRange as exc:
        raise invalid(what, f"holds a number out of range: {exc}.") from None
    except ValueError as exc:
        raise invalid(what, f"is not valid JSON ({exc}).") from None
    if text.count("[") + text.count("{") > MAX_DEPTH and _too_deep(data):
        raise invalid(what, f"nests deeper than {MAX_DEPTH} levels.")
    if ("\\u" in text or _LONG_NUMBER.search(text)) and (problem := _value_problem(data)):
        where, why = problem
        raise UnstorableValue(f"{what} is not valid. {where}: {why}", fields={where: why}, value=data)
    return data


class JsonParser(parsers.JSONParser):
    """DRF's JSON parser, reading through :func:`json_parse`."""

    def parse(self, stream, media_type=None, parser_context=None):
        return json_parse(stream.read())


class BadInputMiddleware(MiddlewareMixin):
    """Refuse a URL path or query parameter PostgreSQL could not take, for every view.

    The views pass path segments and query parameters straight into filters; one check
    here instead of one in each of them.
    """

    def process_request(self, request):
        where, problem = "path", text_problem(request.path)
        if problem is None:
            for key, values in request.GET.lists():
                if problem := text_problem(key):
                    where = "query"
                    break
                if problem := next(filter(None, map(text_problem, values)), None):
                    where = key
                    break
            else:
                return None
        detail = f"The request is not valid. {where}: {problem}"
        if request.path.startswith("/api/"):
            return JsonResponse({"code": "invalid", "detail": detail, "fields": {where: problem}}, status=400)
        return HttpResponseBadRequest(detail, content_type="text/plain; charset=utf-8")
