"""The shared option helpers: server URLs and listen addresses (recorder.wire._addresses), option ranges and
path checks (replay.cli._args)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from recorder.errors import OptionError, PathError
from recorder.wire import Address, parse_listen, parse_server_url
from replay.cli._args import count, input_file, int_at_least, output_dir, output_file, positive, seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://127.0.0.1:7350", Address("127.0.0.1", 7350)),
        ("http://nakama.example:80/", Address("nakama.example", 80)),
        ("http://localhost", Address("localhost", 7350)),
        ("HTTP://[::1]:7351", Address("::1", 7351)),
    ],
)
def test_server_urls(text: str, expected: Address) -> None:
    assert parse_server_url(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("http://127.0.0.1:notaport", "the port 'notaport' is not a number"),
        ("http://127.0.0.1:0", "the port 0 is out of range"),
        ("http://127.0.0.1:65536", "the port 65536 is out of range"),
        ("notaurl", "not a URL; give it as http://HOST:PORT"),
        ("127.0.0.1:7350", "not a URL"),
        ("https://h:1", "TLS is not supported"),
        ("ftp://h:1", "scheme 'ftp' is not supported"),
        ("http://:7350", "names no host"),
        ("http://h:1/v2/rpc", "no path or query"),
        ("http://user:pw@h:1", "credentials do not go in the URL"),
        ("http://::1:7350", "IPv6 address in brackets"),
        ("http://bad host:1", "is not a host name"),
    ],
)
def test_bad_server_urls_name_option_value_and_problem(text: str, problem: str) -> None:
    with pytest.raises(OptionError, match=problem) as err:
        parse_server_url(text, option="--nakama")
    assert str(err.value).startswith(f"--nakama: {text!r}: ")
    assert err.value.option == "--nakama" and err.value.value == text and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7349", Address("127.0.0.1", 7349)),
        (":7000", Address("127.0.0.1", 7000)),
        ("7001", Address("127.0.0.1", 7001)),
        ("0.0.0.0", Address("0.0.0.0", 7350)),
        ("[::1]:0", Address("::1", 0)),
    ],
)
def test_listen_addresses(text: str, expected: Address) -> None:
    assert parse_listen(text, default_port=7350) == expected


@pytest.mark.parametrize("text", ["127.0.0.1:99999", ":-1", "-1", "127.0.0.1:", "h:x", "http://h:1", "a b:1"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(OptionError) as err:
        parse_listen(text)
    assert str(err.value).startswith(f"--listen: {text!r}: ")


def test_ranges() -> None:
    assert count("0") == 0 and positive("1") == 1 and int_at_least(2)("5") == 5 and seconds("0.25") == 0.25
    for convert, bad in [
        (count, "-3"),
        (count, "x"),
        (positive, "0"),
        (positive, "-1"),
        (int_at_least(2), "1"),
        (seconds, "0"),
        (seconds, "-10"),
        (seconds, "nan"),
        (seconds, "inf"),
        (seconds, "soon"),
    ]:
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{bad!r}: "):
            convert(bad)


def test_paths(tmp_path: Path) -> None:
    f = tmp_path / "f.nkrec"
    f.write_bytes(b"x")
    assert input_file(f) == f and output_file(f) == f and output_dir(tmp_path / "new") == tmp_path / "new"
    cases = [
        (input_file, tmp_path, "is a folder, not a file"),
        (input_file, tmp_path / "nope", "no such file"),
        (input_file, tmp_path / "a" / "b", "no such file \\(the folder"),
        (output_file, tmp_path, "is a folder; give the name of the file to write"),
        (output_file, tmp_path / "missing" / "o.nkrec", "the folder '.*missing' does not exist \\(create it first"),
        (output_file, f / "o.nkrec", "is a file, not a folder"),
        (output_dir, f, "is a file, not a folder"),
        (output_dir, tmp_path / "missing" / "out", "does not exist"),
    ]
    for check, path, problem in cases:
        with pytest.raises(PathError, match=problem) as err:
            check(path)
        assert err.value.path == str(path)
