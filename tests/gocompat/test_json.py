"""replay.gocompat._json writes what Go's encoding/json writes (expectations from Go's float and escaping rules)."""

from __future__ import annotations

import math

import pytest

from replay.gocompat._json import dumps, format_float


@pytest.mark.parametrize(
    "x, text",
    [
        (1.0, "1"),
        (0.1, "0.1"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e-5, "0.000015"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (1e-10, "1e-10"),
        (-2.5, "-2.5"),
        (123456789.125, "123456789.125"),
        (0.30000000000000004, "0.30000000000000004"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-0.0, "-0"),
        (0.0, "0"),
    ],
)
def test_floats_as_go_writes_them(x: float, text: str) -> None:
    assert format_float(x) == text


def test_nan_and_infinities_cannot_be_encoded() -> None:
    for x in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="unsupported value"):
            format_float(x)


def test_maps_sorted_html_escaped_bytes_as_base64() -> None:
    assert dumps({"b": [1, 2.0, None, True], "a": "<x>&\u2028", "é": b"\x00\x01", "Z": {}}) == (
        '{"Z":{},"a":"\\u003cx\\u003e\\u0026\\u2028","b":[1,2,null,true],"é":"AAE="}'
    )
