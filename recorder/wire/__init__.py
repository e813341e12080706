"""The realtime wire: Nakama's JSON envelopes, the recording proxy, and the wire recorder behind it.

- ``protocol``: Nakama's realtime protocol without I/O, text in, typed envelopes out, and back (a module of
  message types, used as ``from recorder.wire import protocol as P``);
- ``session_token``: Nakama's HS256 session tokens (``encode``, ``decode``, ``verify``);
- the proxy (``_proxy``) between game clients and Nakama, on a small HTTP/1.1 + WebSocket layer (``_wsio``);
- the wire recorder (``_recorder``): one ``.nkrec`` per match id from observed traffic, through the one
  redaction layer (``_redact``: secrets never reach a file);
- server URLs and listen addresses parsed once (``_addresses``).
"""

from recorder.wire import protocol, session_token
from recorder.wire._addresses import Address, parse_listen, parse_server_url
from recorder.wire._proxy import ProxyLimits, ProxyStats, RecordingProxy, start_proxy
from recorder.wire._recorder import WireRecorder
from recorder.wire._redact import REDACTED, Redactor
from recorder.wire._wsio import (
    App,
    HttpRequest,
    HttpResponse,
    HttpServer,
    WebSocket,
    http_request,
    json_response,
    start_server,
)

__all__ = [
    "REDACTED",
    "Address",
    "App",
    "HttpRequest",
    "HttpResponse",
    "HttpServer",
    "ProxyLimits",
    "ProxyStats",
    "RecordingProxy",
    "Redactor",
    "WebSocket",
    "WireRecorder",
    "http_request",
    "json_response",
    "parse_listen",
    "parse_server_url",
    "protocol",
    "session_token",
    "start_proxy",
    "start_server",
]
