"""Reading a node's tar stream: only the members asked for, written where collect chose.

The streams are real tar archives (``tarfile``), some of them hostile: members that
are not regular files, names that climb out or are absolute, members nobody asked
for, duplicates, a stream cut inside a member.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from composer.collect_tar import Batch, Received, Wanted, read_members


def _archive(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def _wanted(dest: Path, sizes: dict[str, int]) -> dict[str, Wanted]:
    return {name: Wanted(name, size, dest / name) for name, size in sizes.items()}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


ODD = ("new\nline.txt", "-rf", "--help", "ünï cødé ☃.txt", "sub dir/-x", "a" * 150)


def test_regular_members_with_odd_names_are_written_and_hashed(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    data = {name: f"{i}:{name}".encode() for i, name in enumerate(ODD)}
    stream = _archive([_file(f"./{name}", body) for name, body in data.items()])
    batch = Batch()
    wanted = _wanted(dest, {name: len(body) for name, body in data.items()})
    assert read_members(io.BytesIO(stream), wanted, batch) is True
    assert batch.got == {name: Received(_sha(body), len(body), False)
                         for name, body in data.items()}
    for name, body in data.items():
        assert (dest / name).read_bytes() == body
    assert _files(tmp_path) == {f"dest/{name}" for name in ODD}


@pytest.mark.parametrize(("kind", "linkname", "said"), [
    (tarfile.SYMTYPE, "/etc/passwd", "symlink -> /etc/passwd"),
    (tarfile.LNKTYPE, "./other", "hard link"),
    (tarfile.DIRTYPE, "", "directory"),
    (tarfile.FIFOTYPE, "", "fifo"),
    (tarfile.CHRTYPE, "", "character device"),
    (tarfile.BLKTYPE, "", "block device"),
])
def test_a_member_that_is_not_a_regular_file_is_named_never_written(
        tmp_path: Path, kind: bytes, linkname: str, said: str) -> None:
    dest = tmp_path / "dest"
    stream = _archive([_special("./x.txt", kind, linkname), _file("./y.txt", b"y")])
    batch = Batch()
    assert read_members(io.BytesIO(stream), _wanted(dest, {"x.txt": 5, "y.txt": 1}), batch)
    assert batch.got["x.txt"] == said
    assert batch.got["y.txt"] == Received(_sha(b"y"), 1, False)
    assert _files(tmp_path) == {"dest/y.txt"}


def test_members_not_asked_for_are_skipped_wherever_they_point(tmp_path: Path) -> None:
    """Climbing, absolute, unprefixed, unrequested and repeated members write nothing."""
    dest = tmp_path / "out" / "dest"
    stream = _archive([
        _file("./../escape.txt", b"no"), _file("../escape.txt", b"no"),
        _file("/tmp/abs.txt", b"no"), _file("want.txt", b"no: not ./-prefixed"),
        _file("./other.txt", b"no: not asked for"), _file("./want.txt", b"first"),
        _file("./want.txt", b"second"), _special("./sub", tarfile.DIRTYPE),
    ])
    batch = Batch()
    wanted = _wanted(dest, {"want.txt": 5, "../escape.txt": 2})
    assert read_members(io.BytesIO(stream), wanted, batch)
    assert batch.got == {"want.txt": Received(_sha(b"first"), 5, False)}
    assert (dest / "want.txt").read_bytes() == b"first"
    assert _files(tmp_path) == {"out/dest/want.txt"}


def test_a_member_is_read_up_to_its_listed_size(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    stream = _archive([_file("./grew.txt", b"0123456789"), _file("./shrank.txt", b"abc"),
                       _file("./after.txt", b"after")])
    batch = Batch()
    wanted = _wanted(dest, {"grew.txt": 4, "shrank.txt": 8, "after.txt": 5})
    assert read_members(io.BytesIO(stream), wanted, batch)
    assert batch.got["grew.txt"] == Received(_sha(b"0123"), 4, True)
    assert (dest / "grew.txt").read_bytes() == b"0123"
    assert batch.got["shrank.txt"] == Received(_sha(b"abc"), 3, False)
    assert batch.got["after.txt"] == Received(_sha(b"after"), 5, False)


def test_a_stream_cut_inside_a_member_fails_and_leaves_no_partial_file(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    body = bytes(range(256)) * 64
    full = _archive([_file("./a.txt", b"a"), _file("./big.bin", body)])
    cut = full[:512 * 3 + 4000]  # a's header and block, big's header, part of its data
    batch = Batch()
    with pytest.raises(tarfile.ReadError):
        read_members(io.BytesIO(cut), _wanted(dest, {"a.txt": 1, "big.bin": len(body)}), batch)
    assert batch.got == {"a.txt": Received(_sha(b"a"), 1, False)}
    assert _files(tmp_path) == {"dest/a.txt"}


def test_a_stream_cut_between_members_ends_without_the_rest(tmp_path: Path) -> None:
    """tarfile takes a clean cut for the archive's end: the caller sees what is missing
    (and tar's exit status) and reads the batch through SFTP."""
    dest = tmp_path / "dest"
    full = _archive([_file("./a.txt", b"a"), _file("./b.txt", b"b")])
    batch = Batch()
    assert read_members(io.BytesIO(full[:1024]), _wanted(dest, {"a.txt": 1, "b.txt": 1}), batch)
    assert set(batch.got) == {"a.txt"}


def test_garbage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(tarfile.ReadError):
        read_members(io.BytesIO(b"not a tar stream\n" * 64), _wanted(tmp_path, {"a": 1}),
                     Batch())
    assert not list(tmp_path.iterdir())


def test_reading_stops_when_told(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    stream = _archive([_file(f"./f{i}", b"x") for i in range(5)])
    batch = Batch()
    calls = iter(range(100))
    ended = read_members(io.BytesIO(stream), _wanted(dest, {f"f{i}": 1 for i in range(5)}),
                         batch, passed=lambda: next(calls) >= 2)
    assert ended is False
    assert set(batch.got) == {"f0", "f1"}
