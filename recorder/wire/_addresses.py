"""Server URLs and listen addresses, parsed once, with one-line errors (``OptionError``).

``parse_server_url("http://127.0.0.1:7350", option="--nakama")`` and ``parse_listen("127.0.0.1:7349")``
are the only places a URL or ``HOST:PORT`` given by a user is taken apart: every command and library
entry point that takes one (``replay --nakama``, ``proxy --upstream``, ``serve``/``proxy``/``playback
--listen``) goes through them, so a port of 99999, ``notaport`` or a missing host reads the same way
everywhere. No I/O: a host name is not resolved here (binding or connecting says whether it exists).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from recorder.errors import OptionError

__all__ = ["Address", "parse_server_url", "parse_listen", "parse_port"]

_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9]+)?")


@dataclass(frozen=True)
class Address:
    """A host and a TCP port (1..65535; 0 only where a listener may pick a free port)."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """``http://host:port`` (IPv6 hosts in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_port(text: str, *, option: str, value: str, allow_zero: bool = False) -> int:
    """``"7350"`` -> 7350; anything but a whole number in 1..65535 (0 too with ``allow_zero``) is an error."""
    expected = "expected 1..65535, or 0 to pick a free port" if allow_zero else "expected 1..65535"
    try:
        port = int(text.strip(), 10)
    except ValueError:
        raise OptionError(option, value, f"the port {text!r} is not a number ({expected})") from None
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise OptionError(option, value, f"the port {port} is out of range ({expected})")
    return port


def parse_server_url(
    text: str, *, option: str = "--nakama", default_port: int = 7350, schemes: tuple[str, ...] = ("http",)
) -> Address:
    """``http://HOST[:PORT][/]`` -> Address. Plain HTTP only (``ws://`` too when ``schemes`` allows it); a
    URL without ``scheme://`` is refused rather than guessed, so ``notaurl`` is an error, not a host."""
    given = text
    text = text.strip()
    if "://" not in text:
        raise OptionError(option, given, f"not a URL; give it as {schemes[0]}://HOST:PORT")
    parts = urlsplit(text)
    if parts.scheme.lower() not in schemes:
        why = (
            "TLS is not supported"
            if parts.scheme.lower() in ("https", "wss")
            else f"scheme {parts.scheme!r} is not supported"
        )
        raise OptionError(option, given, f"{why}; give it as {schemes[0]}://HOST:PORT")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise OptionError(option, given, "give the server only, as http://HOST:PORT (no path or query)")
    if parts.username is not None or parts.password is not None:
        raise OptionError(option, given, "credentials do not go in the URL (use --server-key)")
    netloc = parts.netloc
    host, port_text = _split_host_port(netloc, option=option, value=given)
    if not host:
        raise OptionError(option, given, "the URL names no host; give it as http://HOST:PORT")
    port = default_port if port_text is None else parse_port(port_text, option=option, value=given)
    return Address(host, port)


def parse_listen(text: str, *, option: str = "--listen", default_port: int = 7350, allow_zero: bool = True) -> Address:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``HOST`` -> Address (host 127.0.0.1 when not given; port 0
    lets the system pick a free one unless ``allow_zero`` is False)."""
    given = text
    text = text.strip()
    if "://" in text:
        raise OptionError(option, given, "a listen address is HOST:PORT, not a URL")
    port_text: str | None
    if text.isdigit() or (text.startswith("-") and text[1:].isdigit()):
        host, port_text = "", text
    else:
        host, port_text = _split_host_port(text, option=option, value=given)
    port = (
        default_port if port_text is None else parse_port(port_text, option=option, value=given, allow_zero=allow_zero)
    )
    return Address(host or "127.0.0.1", port)


def _split_host_port(netloc: str, *, option: str, value: str) -> tuple[str, str | None]:
    """``host:port`` / ``[v6]:port`` / ``host`` -> (host, port text or None)."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise OptionError(option, value, "an IPv6 address needs its closing ']'")
        host, rest = netloc[1:end], netloc[end + 1 :]
        if not _HOST.fullmatch(host):
            raise OptionError(option, value, f"{host!r} is not an IPv6 address")
        if rest and not rest.startswith(":"):
            raise OptionError(option, value, f"unexpected {rest!r} after the IPv6 address")
        return host, (rest[1:] if rest else None)
    host, sep, port_text = netloc.rpartition(":")
    port: str | None = port_text
    if not sep:
        host, port = netloc, None
    elif ":" in host:
        raise OptionError(option, value, "put an IPv6 address in brackets: [::1]:PORT")
    if host and not _HOST.fullmatch(host):
        raise OptionError(option, value, f"{host!r} is not a host name or IP address")
    return host, port
