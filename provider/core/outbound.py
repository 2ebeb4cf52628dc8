"""Every outbound HTTP request of the platform (webhooks today, any later integration) goes through here.

What it guarantees, whatever URL a user typed:

- the scheme is https (http too outside production, when OUTBOUND_HTTPS_ONLY is off);
- the host is a DNS name or a plain address: numeric shorthands that resolvers expand in surprising ways
  (``2130706433``, ``0x7f.1``, ``127.1``, ``017700000001``) are refused as written;
- the host is resolved **once**; every address it resolves to must be public: loopback, private, link-local,
  multicast, reserved, unspecified, shared (CGNAT 100.64/10), documentation and benchmarking ranges and the
  cloud metadata addresses are refused, in IPv4 and IPv6, including IPv4 written inside IPv6
  (``::ffff:127.0.0.1``, ``::127.0.0.1``, 6to4 ``2002::/16``, Teredo, NAT64 ``64:ff9b::/96``);
- the connection is made to that checked address (no second lookup, so no DNS-rebinding window), while TLS
  SNI, certificate check and the Host header keep the name;
- redirects are never followed (a 3xx is an answer like any other non-2xx);
- connect and read each have a short timeout, and the whole exchange a deadline;
- at most OUTBOUND_MAX_RESPONSE_BYTES of the answer are read.

Hosts an agency admin lists in OUTBOUND_ALLOWED_HOSTS (exact names or addresses, e.g. an internal ERP) skip the
address check; they are still resolved once and connected to by address.

The caller gets an `OutboundResult` whose `shown` text is all a client may see: ``refused``, ``timed out`` or
``HTTP <status>``. The precise reason (which range, which error) is in `reason`, for the server log only.
"""

from __future__ import annotations

import http.client
import ipaddress
import logging
import re
import socket
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
REFUSED, TIMED_OUT = "refused", "timed out"

# Public-looking addresses that are nevertheless the cloud's own services (metadata, DNS, wire server).
_METADATA = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack instance metadata (also link-local)
        "169.254.170.2/32",  # AWS ECS task metadata
        "100.100.100.200/32",  # Alibaba Cloud metadata (also shared address space)
        "168.63.129.16/32",  # Azure wire server / DNS: a public address reachable only from inside Azure
        "192.0.0.192/32",  # Oracle Cloud metadata (IETF protocol assignments)
        "fd00:ec2::254/128",  # AWS metadata over IPv6
    )
)
# Ranges Python's is_global does not cover everywhere (or covers only in newer versions).
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",  # shared address space (CGNAT)
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_PLAIN_IPV4 = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")
_NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|\d*")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class OutboundRefused(ValueError):
    """The URL may not be called; `reason` is for the log, the message is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__("give the https URL of a public host")
        self.reason = reason


@dataclass(frozen=True)
class Policy:
    https_only: bool = True
    allowed_hosts: frozenset[str] = frozenset()
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 5.0
    deadline_s: float = 10.0
    max_response_bytes: int = 64 * 1024

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Policy:
        return cls(
            https_only=bool(config.get("OUTBOUND_HTTPS_ONLY", True)),
            allowed_hosts=frozenset(h.lower() for h in config.get("OUTBOUND_ALLOWED_HOSTS", ()) or ()),
            connect_timeout_s=float(config.get("OUTBOUND_CONNECT_TIMEOUT_S", 3.0)),
            read_timeout_s=float(config.get("OUTBOUND_READ_TIMEOUT_S", 5.0)),
            deadline_s=float(config.get("OUTBOUND_DEADLINE_S", 10.0)),
            max_response_bytes=int(config.get("OUTBOUND_MAX_RESPONSE_BYTES", 64 * 1024)),
        )


@dataclass
class OutboundResult:
    status: int | None
    shown: str  # "", "refused", "timed out" or "HTTP <status>": the only words a client sees
    reason: str = ""  # for the server log
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


# --- addresses ------------------------------------------------------------------------------------------


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, Teredo client, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why this address may not be called, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            why = blocked_reason(inner)
            return f"{ip} carries {inner}: {why}" if why else None
    for net in _METADATA:
        if ip.version == net.version and ip in net:
            return f"{ip} is a cloud metadata address"
    for name in ("is_loopback", "is_private", "is_link_local", "is_multicast", "is_reserved", "is_unspecified"):
        if getattr(ip, name):
            return f"{ip} {name.removeprefix('is_').replace('_', '-')}"
    for net in _EXTRA_BLOCKED:
        if ip.version == net.version and ip in net:
            return f"{ip} is in {net}"
    if not ip.is_global:
        return f"{ip} is not a global address"
    return None


def _host_of(url: str, policy: Policy) -> tuple[str, int, str, str]:
    """(host, port, scheme, path) of a URL we may call, or OutboundRefused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"unparsable URL: {exc}") from None
    scheme = parts.scheme.lower()
    allowed_schemes = ("https",) if policy.https_only else ("https", "http")
    if scheme not in allowed_schemes:
        raise OutboundRefused(f"scheme {scheme!r} not allowed")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused("credentials in the URL")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host or len(url) > 2000 or any(c.isspace() for c in url):
        raise OutboundRefused("no host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return host, port or (443 if scheme == "https" else 80), scheme, path


def _literal(host: str) -> IPAddress | None:
    """The address a host written as an address denotes; refuses numeric shorthands and zone ids."""
    if ":" in host or "%" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise OutboundRefused(f"malformed IPv6 literal {host!r}") from None
    if _PLAIN_IPV4.match(host):
        return ipaddress.IPv4Address(host)
    labels = host.split(".")
    # what inet_aton would read as an address (2130706433, 0x7f.1, 127.1, 0177.0.0.1); no real name ends in digits
    if all(_NUMERIC_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise OutboundRefused(f"numeric shorthand host {host!r}")
    return None


def _checked_literal(url: str, policy: Policy) -> tuple[str, int, str, str, IPAddress | None]:
    host, port, scheme, path = _host_of(url, policy)
    literal = _literal(host)
    if literal is None and not all(_HOST_LABEL.match(label) for label in _idna(host).split(".")):
        raise OutboundRefused(f"malformed host {host!r}")
    if literal is not None and host not in policy.allowed_hosts:
        why = blocked_reason(literal)
        if why:
            raise OutboundRefused(f"{host}: {why}")
    return host, port, scheme, path, literal


def _idna(host: str) -> str:
    try:
        return host.encode("idna").decode()
    except UnicodeError:
        raise OutboundRefused(f"malformed host {host!r}") from None


def resolve(url: str, policy: Policy) -> tuple[str, int, str, str, IPAddress]:
    """Check a URL and resolve its host once: (host, port, scheme, path, address to connect to)."""
    host, port, scheme, path, literal = _checked_literal(url, policy)
    if literal is not None:
        return host, port, scheme, path, literal
    try:
        infos = socket.getaddrinfo(_idna(host), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"{host} does not resolve: {exc}") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))
    if not addresses:
        raise OutboundRefused(f"{host} resolves to nothing")
    if host not in policy.allowed_hosts:
        for address in addresses:
            why = blocked_reason(address)
            if why:
                raise OutboundRefused(f"{host}: {why}")
    return host, port, scheme, path, addresses[0]


def check_url(url: str, policy: Policy) -> None:
    """Refuse (OutboundRefused) a URL that can never be called: bad scheme or host, an internal address written
    as such. Names are resolved only when sending (what a name resolves to may change)."""
    _checked_literal(url, policy)


# --- the request ----------------------------------------------------------------------------------------


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: IPAddress, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self._address, self._read_timeout = address, read_timeout

    def connect(self) -> None:
        self.sock = socket.create_connection((str(self._address), self.port), self.timeout)
        self.sock.settimeout(self._read_timeout)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    def __init__(self, *args: Any, context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def send(
    method: str,
    url: str,
    body: bytes | None,
    headers: Mapping[str, str],
    policy: Policy,
    *,
    tls_context: ssl.SSLContext | None = None,
) -> OutboundResult:
    """Make one request under `policy` and never raise for what the other side does."""
    try:
        host, port, scheme, path, address = resolve(url, policy)
    except OutboundRefused as exc:
        log.warning("outbound request to %s refused: %s", url[:200], exc.reason)
        return OutboundResult(None, REFUSED, exc.reason)
    args = (host, port, address, policy.connect_timeout_s, policy.read_timeout_s)
    conn: _PinnedHTTPConnection = (
        _PinnedHTTPSConnection(*args, context=tls_context or _tls_context())
        if scheme == "https"
        else _PinnedHTTPConnection(*args)
    )
    deadline = time.monotonic() + policy.deadline_s
    try:
        conn.request(method, path, body=body, headers=dict(headers))
        response = conn.getresponse()
        data = _read_capped(response, policy.max_response_bytes, deadline)
        status = response.status
        shown = "" if 200 <= status < 300 else f"HTTP {status}"
        return OutboundResult(status, shown, shown, data, {k.lower(): v for k, v in response.getheaders()})
    except TimeoutError as exc:
        return _failed(url, TIMED_OUT, f"timed out: {exc}")
    except _TooLarge as exc:
        return _failed(url, REFUSED, str(exc))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return _failed(url, REFUSED, f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


class _TooLarge(Exception):
    pass


def _read_capped(response: http.client.HTTPResponse, cap: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError("deadline passed while reading the response")
        chunk = response.read1(min(16 * 1024, cap + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > cap:
            raise _TooLarge(f"response larger than {cap} bytes")
        chunks.append(chunk)


def _failed(url: str, shown: str, reason: str) -> OutboundResult:
    log.info("outbound request to %s failed: %s", url[:200], reason)
    return OutboundResult(None, shown, reason)


def post_json(url: str, body: bytes, headers: Mapping[str, str], policy: Policy) -> OutboundResult:
    return send("POST", url, body, {"Content-Type": "application/json", **headers}, policy)


def parse_hosts(raw: str | Iterable[str]) -> frozenset[str]:
    items = raw.split(",") if isinstance(raw, str) else raw
    return frozenset(h.strip().lower().rstrip(".") for h in items if h.strip())
