"""The READDIR reply parser of collect's listing: names as bytes, lstat modes, sizes."""

from __future__ import annotations

import stat
import struct

from composer.collect import _names


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _entry(name: bytes, flags: int, size: int = 0, mode: int = 0,
           extended: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    body = _string(name) + _string(b"-rw-r--r-- 1 u g " + name) + struct.pack(">I", flags)
    if flags & 1:
        body += struct.pack(">Q", size)
    if flags & 2:
        body += struct.pack(">II", 1000, 1000)
    if flags & 4:
        body += struct.pack(">I", mode)
    if flags & 8:
        body += struct.pack(">II", 1, 2)
    if flags & (1 << 31):
        body += struct.pack(">I", len(extended))
        for key, value in extended:
            body += _string(key) + _string(value)
    return body


def test_a_readdir_reply_is_read_entry_by_entry() -> None:
    regular = stat.S_IFREG | 0o644
    entries = [
        _entry(b".", 15, 4096, stat.S_IFDIR | 0o755),
        _entry(b"..", 15, 4096, stat.S_IFDIR | 0o755),
        _entry(b"plain.txt", 15, 12, regular),
        _entry(b"\xff-not-utf8", 1 | 4, 3, regular),
        _entry(b"new\nline", 15 | (1 << 31), 1 << 40, regular,
               ((b"key@example.com", b"value"), (b"", b"\x00\x01"))),
        _entry(b"link", 4 | 8, mode=stat.S_IFLNK | 0o777),
        _entry(b"no-attributes", 0),
    ]
    assert _names(b"".join(entries), len(entries)) == [
        (b"plain.txt", regular, 12),
        (b"\xff-not-utf8", regular, 3),
        (b"new\nline", regular, 1 << 40),
        (b"link", stat.S_IFLNK | 0o777, 0),
        (b"no-attributes", 0, 0),
    ]
