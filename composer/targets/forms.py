"""Value forms the cloud targets' sections share (``[aws]``, ``[gcp]``): CIDR blocks that
may reach the nodes' port 22, Unix user names, a string that must match a pattern, and the
JSON Schema of an array of distinct strings. Each section says its own rules around them."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from composer.spec.check import Checker
from composer.spec.fields import MISSING
from composer.spec.text import quote

UNIX_USER = r"[a-z_][a-z0-9_-]{0,31}"
UNIX_USER_RULE = ("must be a Unix user name (a-z, 0-9, '_', '-', not starting with a digit "
                  "or '-', at most 32 characters)")
#: The JSON Schema's rough form of a CIDR block; ``cidr_problem`` is the real check.
CIDR = (r"^([0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}"
        r"|[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){1,7}(:[0-9.]+)?/[0-9]{1,3})$")
MAPPED_V4 = ipaddress.IPv6Network("::ffff:0:0/96")


def strings_schema(pattern: str | None = None) -> dict[str, Any]:
    """A non-empty array of distinct strings, each matching ``pattern`` when given."""
    items: dict[str, Any] = {"type": "string"}
    if pattern is not None:
        items["pattern"] = pattern if pattern.startswith("^") else f"^(?:{pattern})$"
    return {"type": "array", "minItems": 1, "uniqueItems": True, "items": items}


def matching(c: Checker, value: Any, path: str, pattern: str, rule: str) -> str | None:
    """A non-empty string matching ``pattern`` whole; else the problem ``rule, got "x"``."""
    text = c.string(value, path, nonempty=True)
    if text is not None and not re.fullmatch(pattern, text):
        return c.add(path, f"{rule}, got {quote(text)}")
    return text


def check_cidrs(c: Checker, value: Any, path: str) -> tuple[str, ...]:
    """``ssh_cidrs``: at least one block, none twice, each written one way."""
    return () if value is MISSING else c.strings(value, path, "CIDR blocks", cidr_problem)


def cidr_problem(text: str) -> str | None:
    address, slash, prefix = text.partition("/")
    if not slash:
        return ('must be a CIDR block with its prefix length, such as "203.0.113.7/32", '
                f"got {quote(text)}")
    try:
        if not prefix.isdigit():
            raise ValueError(prefix)
        ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            network = ipaddress.ip_network(text, strict=False) if prefix.isdigit() else None
        except ValueError:
            network = None
        if network is not None:
            return f'{quote(text)} has host bits set; did you mean "{network}"?'
        return f'must be an IPv4 or IPv6 CIDR block such as "203.0.113.0/24", got {quote(text)}'
    network = ipaddress.ip_network(text, strict=True)
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(MAPPED_V4):
        # ::ffff:0.0.0.0/96 is every IPv4 address, spelt so that no rule says so.
        return (f"{quote(text)} is IPv4 written as IPv6; write the IPv4 block "
                f'("{_mapped_v4(network)}")')
    if str(network) != text:
        # The providers and the clouds compare blocks as written: one spelling per block.
        return f'write {quote(text)} as "{network}"'
    return None


def _mapped_v4(network: ipaddress.IPv6Network) -> ipaddress.IPv4Network:
    first = network.network_address.ipv4_mapped or ipaddress.IPv4Address(0)
    return ipaddress.IPv4Network(f"{first}/{max(0, network.prefixlen - 96)}")
