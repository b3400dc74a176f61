"""Webhook addresses: what a valid one is, which network addresses it may reach, and
how it is shown to people who may not see its secrets.

One module, used when a workflow is saved (step options), when a delivery connects
(:mod:`workflow_service.notifications.channels`) and wherever a webhook URL is
serialized, so the three never disagree. It lives beside the step kinds, not in the
notifications feature, because the core ``notify`` step names a ``webhook_url`` too.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# ------------------------------------------------------------------- parsing the URL

#: One DNS label (after IDNA encoding). Linear: one bounded character class per part.
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


class InvalidWebhookUrl(ValueError):
    """The URL cannot be a webhook address (scheme, host or port)."""


@dataclass(frozen=True)
class WebhookTarget:
    """A parsed webhook URL: where to connect, what to ask for, and what to send as
    ``Host``, SNI and the name the certificate must carry (``host``)."""

    scheme: str
    #: Lower case, IDNA-encoded name or an IP literal without brackets.
    host: str
    port: int
    #: Path and query, as sent in the request line.
    target: str
    username: str | None = None
    password: str | None = None

    @property
    def literal_ip(self) -> IPAddress | None:
        return literal_ip(self.host)


def parse_webhook_url(url: str) -> WebhookTarget:
    """Check ``url`` as a webhook address; raise :class:`InvalidWebhookUrl` saying why."""
    if not isinstance(url, str) or not url:
        raise InvalidWebhookUrl("must be an http:// or https:// URL")
    if _CONTROL_OR_SPACE.search(url):
        raise InvalidWebhookUrl("must not contain spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced IPv6 bracket
        raise InvalidWebhookUrl(f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidWebhookUrl("must be an http:// or https:// URL")
    if not parts.hostname:
        raise InvalidWebhookUrl("must name a host")
    try:
        port = parts.port
    except ValueError:
        raise InvalidWebhookUrl("has an invalid port; a port is a number from 1 to 65535") from None
    if port is not None and not 1 <= port <= 65535:
        raise InvalidWebhookUrl("has an invalid port; a port is a number from 1 to 65535")
    host = _normal_host(parts.hostname)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return WebhookTarget(
        scheme=scheme,
        host=host,
        port=port or (443 if scheme == "https" else 80),
        target=target,
        username=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password is not None else None,
    )


def _normal_host(hostname: str) -> str:
    ip = literal_ip(hostname)
    if ip is not None:
        return str(ip)
    try:
        ascii_host = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidWebhookUrl(f"has an invalid host name {hostname!r}") from None
    name = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise InvalidWebhookUrl(f"has an invalid host name {hostname!r}")
    return ascii_host


def literal_ip(host: str) -> IPAddress | None:
    """The address ``host`` spells, or None for a name.

    Besides the usual forms this catches what the C resolver reads as IPv4 too
    (``2130706433``, ``0x7f.1``, ``017700000001``), so they cannot pass for names.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


# -------------------------------------------------------------- which addresses are allowed

_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, by the standard embeddings.

    IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``, e.g.
    ``::7f00:1``), SIIT / IPv4-translated (``::ffff:0:a.b.c.d``), NAT64 well-known
    prefix (``64:ff9b::/96``), 6to4 (``2002:aabb:ccdd::/48``) and Teredo (server and
    client). A host that routes any of these may deliver the packet to the IPv4
    address inside, so that address is checked as well as the IPv6 one.
    """
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address in _IPV4_COMPATIBLE or address in _SIIT or address in _NAT64_WELL_KNOWN:
        found.append(low32)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    return found


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address (None when it is)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped (link-local) address"
        if address in _NAT64_LOCAL_USE:
            # RFC 8215: the operator picks where the IPv4 address sits; refuse it whole.
            return "inside the local-use NAT64 prefix 64:ff9b:1::/48"
        for inner in embedded_ipv4(address):
            reason = refusal_reason(inner)
            if reason is not None:
                return f"carrying the IPv4 address {inner}, {reason}"
    if address.is_multicast:
        return "a multicast address"
    if not address.is_global:
        return "a private, loopback, link-local or reserved address"
    return None


def refused_host_name(host: str) -> bool:
    """Names that mean this machine wherever they are resolved (RFC 6761)."""
    name = host.rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


# ------------------------------------------------- whether private networks are allowed


@dataclass
class NetworkPolicy:
    """Whether webhooks may reach loopback, private, link-local and reserved addresses
    (``WEBHOOK_ALLOW_PRIVATE_NETWORKS``).

    Process configuration, set once at start by the web app and the worker (step
    options are validated by pydantic, which has no other way to see the settings);
    the default refuses.
    """

    allow_private: bool = False


POLICY = NetworkPolicy()


def configure(*, allow_private: bool) -> None:
    POLICY.allow_private = allow_private


def check_saved_url(url: str) -> str:
    """Validate a webhook URL as a step option: syntax always, and a literal private
    address (or ``localhost``) unless private networks are allowed. Names are resolved
    and checked again at every delivery."""
    target = parse_webhook_url(url)
    if POLICY.allow_private:
        return url
    ip = target.literal_ip
    reason = refusal_reason(ip) if ip is not None else None
    if reason is None and refused_host_name(target.host):
        reason = "this machine"
    if reason is not None:
        raise InvalidWebhookUrl(
            f"points to {target.host}, {reason}; set WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to "
            "allow webhooks into private networks"
        )
    return url


# ------------------------------------------------------------------------ redaction

REDACTED = "***"
#: Path segments and query names that read as words are kept; anything else (ids,
#: tokens, keys: they carry digits, capitals or are long) is replaced.
_WORD = re.compile(r"[a-z][a-z._-]{0,31}|v[0-9]{1,3}")
_URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+", re.IGNORECASE)
#: Keys whose string values are webhook URLs, wherever they appear in a body.
URL_KEYS = frozenset({"url", "webhook_url"})
#: Keys whose string values are free text that may quote a URL.
TEXT_KEYS = frozenset({"error"})
#: Roles that see webhook URLs whole (``admin`` holds every role).
FULL_URL_ROLES = ("editor", "service")


def redact_url(url: str) -> str:
    """``url`` without its secrets: userinfo, query values and path segments that are
    not plain words become ``***``; scheme, host, port and word segments stay, so a
    reader can still tell where a webhook goes."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return REDACTED
    if not parts.scheme or not parts.netloc:
        return REDACTED
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = f"{REDACTED}@{hostport}" if at else hostport
    path = "/".join(
        segment if not segment or _WORD.fullmatch(segment) else REDACTED
        for segment in parts.path.split("/")
    )
    query = "&".join(
        f"{key if _WORD.fullmatch(key) else REDACTED}={REDACTED}"
        for key, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    if parts.query and not query:
        query = REDACTED
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, ""))


def redact_urls_in_text(text: str) -> str:
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def redact_webhook_urls(value: Any) -> Any:
    """A copy of a JSON value with every webhook URL redacted: values of ``url`` and
    ``webhook_url`` keys (step options, step outputs) and URLs quoted in ``error``."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(item, str) and key in URL_KEYS:
                out[key] = redact_url(item)
            elif isinstance(item, str) and key in TEXT_KEYS:
                out[key] = redact_urls_in_text(item)
            else:
                out[key] = redact_webhook_urls(item)
        return out
    if isinstance(value, list):
        return [redact_webhook_urls(item) for item in value]
    return value


def sees_webhook_urls(principal: Any) -> bool:
    """Whether ``principal`` may read webhook URLs whole (editors and above)."""
    return bool(principal.has_role(*FULL_URL_ROLES))


def for_reader(principal: Any, body: Any) -> Any:
    """``body`` as ``principal`` may see it: whole, or with webhook URLs redacted."""
    return body if sees_webhook_urls(principal) else redact_webhook_urls(body)
