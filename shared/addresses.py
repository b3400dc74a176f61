"""E-mail addresses as this system accepts them: for the user directory and every
channel that sends to one."""

from __future__ import annotations

from email.headerregistry import Address
from email.utils import getaddresses, parseaddr

#: Longest e-mail address accepted.
MAX_EMAIL_CHARS = 320


def is_email_address(value: object) -> bool:
    """True when ``value`` is exactly one plain addr-spec (``local@domain.tld``): no
    display name, comment, quoted local part, second address or line break, so it can
    never add a recipient to a message."""
    if not isinstance(value, str) or not 3 <= len(value) <= MAX_EMAIL_CHARS:
        return False
    if not value.isprintable() or any(c in value for c in ' "<>(),;:\\'):
        return False
    try:
        address = Address(addr_spec=value)
    except Exception:  # the parser raises several error types for malformed input
        return False
    domain = address.domain
    return (
        address.addr_spec == value
        and 0 < len(address.username) <= 64  # RFC 5321's limits
        and len(domain) <= 255
        and "." in domain.strip(".")
        and not domain.startswith("[")
        and parseaddr(value) == ("", value)
        and getaddresses([value]) == [("", value)]
    )
