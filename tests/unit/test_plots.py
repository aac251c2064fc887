"""Series in metrics files, and plots that are the same bytes for the same data."""

from __future__ import annotations

import struct
import zlib

import pytest

from composer.records import plots


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        at += 12 + length
    return chunks


def test_series_are_lists_of_two_or_more_numbers_anywhere() -> None:
    data = {"loss": [3, 2.5, 1], "one": [1], "flags": [True, False], "mixed": [1, "a"],
            "eval": {"curve": [0.1, 0.2]}, "runs": [{"acc": [1, 2]}], "n": 3}
    found = plots.find_series("m.json", data)
    assert [(s.key, s.values) for s in found] == [
        ("loss", (3.0, 2.5, 1.0)), ("eval.curve", (0.1, 0.2)), ("runs[0].acc", (1.0, 2.0))]
    assert plots.find_series("top.json", [1, 2, 3])[0].key == ""


def test_plot_names_are_safe_and_distinct() -> None:
    a = plots.Series("node-0/m.json", "a/b", (1.0, 2.0))
    b = plots.Series("node-0/m.json", "a:b", (1.0, 2.0))
    hostile = plots.Series("../../x y`<z>.json", "](javascript:alert(1))", (1.0, 2.0))
    names = [s.plot_name for s in (a, b, hostile)]
    assert len(set(names)) == 3
    for name in names:
        folder, _, base = name.partition("/")
        assert folder == plots.PLOTS_DIR and "/" not in base and base.endswith(".png")
        assert all(c.isalnum() or c in "._-" for c in base), name
        assert not base.startswith(".")


def test_the_same_series_gives_the_same_png_bytes() -> None:
    pytest.importorskip("matplotlib", reason="the plots extra is not installed")
    series = plots.Series("metrics.json", "loss", tuple(1 / (i + 1) for i in range(40)))
    first = plots.plot_png(series)
    again = plots.plot_png(plots.Series("metrics.json", "loss", series.values))
    assert first == again
    kinds = [kind for kind, _ in png_chunks(first)]
    assert b"tIME" not in kinds, "no time in the PNG"
    texts = b"".join(body for kind, body in png_chunks(first) if kind in (b"tEXt", b"iTXt"))
    assert b"Software" not in texts and b"matplotlib" not in texts.lower()
    other = plots.plot_png(plots.Series("metrics.json", "loss", series.values[:-1] + (9.0,)))
    assert other != first


def test_a_user_style_does_not_change_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    matplotlib = pytest.importorskip("matplotlib", reason="the plots extra is not installed")
    series = plots.Series("m.json", "x", (1.0, float("nan"), float("inf"), 2.0))
    before = plots.plot_png(series)
    with matplotlib.rc_context({"lines.color": "red", "axes.prop_cycle":
                                matplotlib.cycler(color=["#ff0000"]), "figure.dpi": 33}):
        assert plots.plot_png(series) == before


def test_long_series_are_thinned_keeping_the_last_point() -> None:
    xs, ys = plots._thinned(tuple(float(i) for i in range(plots.MAX_POINTS * 3 + 7)))
    assert len(xs) <= plots.MAX_POINTS + 1 and xs[0] == 0
    assert xs[-1] == plots.MAX_POINTS * 3 + 6 and ys[-1] == xs[-1]
