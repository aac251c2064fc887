"""Comparison primitives: flattening, manifests, tolerances, metrics, text and tree diffs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from composer.compare import (
    BINARY_DIFFERS,
    ONLY_IN_NEW,
    ONLY_IN_OLD,
    TEXT_DIFF_LIMIT,
    FileChange,
    MetricDelta,
    compare_manifests,
    compare_metrics,
    flatten_leaves,
    flatten_numbers,
    output_text_diff,
    tree_diff,
    unified,
    with_text_diffs,
    within,
)
from composer.reproduce import Recorded, format_verdict, verdict
from composer.result import Result
from composer.spec import Spec, parse_spec


def zero(_key: str) -> tuple[float, float]:
    return 0.0, 0.0


# flatten_numbers / flatten_leaves


def test_flatten_numbers_example() -> None:
    assert flatten_numbers({"a": {"b": 1}, "l": [2, 3]}) == {"a.b": 1.0, "l[0]": 2.0, "l[1]": 3.0}


def test_flatten_numbers_values_are_floats() -> None:
    flat = flatten_numbers({"n": 7})
    assert flat == {"n": 7.0}
    assert isinstance(flat["n"], float)


def test_flatten_numbers_top_level_number() -> None:
    assert flatten_numbers(3) == {"": 3.0}
    assert flatten_numbers(2.5) == {"": 2.5}


def test_flatten_numbers_ignores_bools_strings_and_nulls() -> None:
    data = {"ok": True, "no": False, "s": "1", "n": None, "x": 0, "l": [True, 1]}
    assert flatten_numbers(data) == {"x": 0.0, "l[1]": 1.0}
    assert flatten_numbers(True) == {}


def test_flatten_numbers_nested_lists_and_objects() -> None:
    data = {"m": [[1, 2], [{"k": 3}]], "top": [{"a": [4]}]}
    assert flatten_numbers(data) == {
        "m[0][0]": 1.0,
        "m[0][1]": 2.0,
        "m[1][0].k": 3.0,
        "top[0].a[0]": 4.0,
    }
    assert flatten_numbers([5, [6]]) == {"[0]": 5.0, "[1][0]": 6.0}


def test_flatten_numbers_prefix_and_empties() -> None:
    assert flatten_numbers({"a": 1}, prefix="root") == {"root.a": 1.0}
    assert flatten_numbers({"e": {}, "l": []}) == {}


def test_flatten_numbers_keeps_nan_and_infinity() -> None:
    flat = flatten_numbers({"n": float("nan"), "i": float("inf")})
    assert math.isnan(flat["n"]) and flat["i"] == math.inf


def test_flatten_leaves_keeps_every_leaf() -> None:
    data = {"a": {"b": "x", "c": None, "d": True}, "e": {}, "l": [], "m": [1, "y"]}
    assert flatten_leaves(data) == {
        "a.b": "x",
        "a.c": None,
        "a.d": True,
        "e": {},
        "l": [],
        "m[0]": 1,
        "m[1]": "y",
    }


# compare_manifests


def manifest(*files: tuple[str, str, int]) -> dict:
    return {
        "schema_version": 1,
        "files": [
            {"path": p, "node": "node-0", "size": s, "sha256": h, "committed": True}
            for p, h, s in files
        ],
    }


def test_compare_manifests_changed_added_removed_sorted() -> None:
    old = manifest(("z.bin", "z1", 5), ("same.txt", "s", 1), ("gone.json", "g", 3),
                   ("a.txt", "a1", 2))
    new = manifest(("a.txt", "a2", 4), ("same.txt", "s", 1), ("new.json", "n", 9),
                   ("z.bin", "z2", 5))
    assert compare_manifests(old, new) == [
        FileChange("a.txt", "changed", "a1", "a2", 2, 4),
        FileChange("gone.json", "removed", "g", None, 3, None),
        FileChange("new.json", "added", None, "n", None, 9),
        FileChange("z.bin", "changed", "z1", "z2", 5, 5),
    ]


def test_compare_manifests_identical_and_node_only_changes_are_omitted() -> None:
    old = manifest(("a", "h", 1))
    new = manifest(("a", "h", 1))
    new["files"][0]["node"] = "node-3"
    assert compare_manifests(old, new) == []
    assert compare_manifests(old, old) == []


def test_compare_manifests_empty_or_missing_files() -> None:
    assert compare_manifests({}, {"files": []}) == []
    assert compare_manifests({}, manifest(("a", "h", 1))) == [
        FileChange("a", "added", None, "h", None, 1)
    ]


# within


def test_within_equal_values_always() -> None:
    assert within(1.0, 1.0, 0.0, 0.0)
    assert within(0.0, -0.0, 0.0, 0.0)
    assert within(math.inf, math.inf, 0.0, 0.0)
    assert within(math.nan, math.nan, 0.0, 0.0)


def test_within_absolute_tolerance_boundary() -> None:
    assert within(1.0, 1.5, 0.5, 0.0)
    assert within(1.5, 1.0, 0.5, 0.0)
    assert not within(1.0, 1.5000001, 0.5, 0.0)
    assert not within(1.0, 1.0000001, 0.0, 0.0)


def test_within_relative_tolerance_uses_the_larger_magnitude() -> None:
    assert within(100.0, 110.0, 0.0, 0.1 / 1.1 + 1e-12)
    assert within(90.0, 100.0, 0.0, 0.1)
    assert not within(90.0, 100.0, 0.0, 0.099)
    assert within(-100.0, -95.0, 0.0, 0.05)


def test_within_takes_the_larger_of_the_two_tolerances() -> None:
    assert within(1000.0, 1001.0, 0.5, 0.001)
    assert within(0.0, 0.4, 0.5, 0.001)
    assert not within(0.0, 0.6, 0.5, 0.001)


def test_within_nan_and_infinity_never_within_unless_equal() -> None:
    assert not within(math.nan, 1.0, 1e9, 1.0)
    assert not within(1.0, math.nan, 1e9, 1.0)
    assert not within(1.0, math.inf, 1e9, 1.0)
    assert not within(-math.inf, math.inf, 1e9, 1.0)


# compare_metrics


def test_compare_metrics_reports_changed_keys_sorted_and_omits_identical() -> None:
    old = {"loss": 0.5, "acc": 0.9, "steps": 10, "name": "x"}
    new = {"loss": 0.25, "acc": 0.9, "steps": 12, "name": "y"}
    deltas = compare_metrics("m.json", old, new, zero)
    assert [d.key for d in deltas] == ["loss", "steps"]
    loss = deltas[0]
    assert loss == MetricDelta("m.json", "loss", 0.5, 0.25, 0.25, 0.5, 0.0, 0.0, False)
    assert deltas[1].abs_diff == 2.0 and deltas[1].rel_diff == pytest.approx(2 / 12)


def test_compare_metrics_missing_keys_are_never_within() -> None:
    deltas = compare_metrics("f", {"a": 1, "b": 2}, {"b": 2, "c": 3}, lambda _k: (1e9, 1.0))
    assert deltas == [
        MetricDelta("f", "a", 1.0, None, None, None, 1e9, 1.0, False),
        MetricDelta("f", "c", None, 3.0, None, None, 1e9, 1.0, False),
    ]


def test_compare_metrics_tolerance_is_per_key() -> None:
    def tol(key: str) -> tuple[float, float]:
        return (0.1, 0.0) if key.startswith("loose") else (0.0, 0.0)

    deltas = compare_metrics("f", {"loose.x": 1.0, "tight": 1.0},
                             {"loose.x": 1.05, "tight": 1.05}, tol)
    by_key = {d.key: d for d in deltas}
    assert by_key["loose.x"].within and by_key["loose.x"].abs_tol == 0.1
    assert not by_key["tight"].within and by_key["tight"].abs_tol == 0.0


def test_compare_metrics_bools_are_not_metrics() -> None:
    assert compare_metrics("f", {"ok": True, "n": 1}, {"ok": False, "n": 1}, zero) == []


def test_compare_metrics_nested_lists() -> None:
    old = {"hist": [1, 2, 3], "per": [{"r": 1}]}
    new = {"hist": [1, 5], "per": [{"r": 1}, {"r": 2}]}
    deltas = compare_metrics("f", old, new, zero)
    assert [(d.key, d.old, d.new, d.within) for d in deltas] == [
        ("hist[1]", 2.0, 5.0, False),
        ("hist[2]", 3.0, None, False),
        ("per[1].r", None, 2.0, False),
    ]


def test_compare_metrics_nan_handling() -> None:
    nan = float("nan")
    assert compare_metrics("f", {"x": nan}, {"x": nan}, zero) == []
    (delta,) = compare_metrics("f", {"x": nan}, {"x": 1.0}, lambda _k: (1e9, 1.0))
    assert delta.abs_diff is None and delta.rel_diff is None and not delta.within


def test_compare_metrics_within_tolerance_is_still_reported() -> None:
    (delta,) = compare_metrics("f", 1.0, 1.0001, lambda _k: (0.0, 1e-3))
    assert delta.key == "" and delta.within
    assert delta.abs_diff == pytest.approx(1e-4)


def test_compare_metrics_int_vs_float_equal_is_identical() -> None:
    assert compare_metrics("f", {"n": 2}, {"n": 2.0}, zero) == []


# unified


def test_unified_equal_is_empty() -> None:
    assert unified("a\nb\n", "a\nb\n", "x.txt") == ""
    assert unified("", "", "x.txt") == ""


def test_unified_format() -> None:
    text = unified("one\ntwo\nthree\n", "one\n2\nthree\n", "dir/f.txt")
    assert text == (
        "--- a/dir/f.txt\n"
        "+++ b/dir/f.txt\n"
        "@@ -1,3 +1,3 @@\n"
        " one\n"
        "-two\n"
        "+2\n"
        " three\n"
    )


def test_unified_missing_final_newline_is_marked() -> None:
    text = unified("a\nb", "a\nc", "f")
    assert text.endswith("-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n")
    assert text.count("\n") == len(text.splitlines())


def test_unified_from_and_to_empty() -> None:
    assert "+new\n" in unified("", "new\n", "f")
    assert "-old\n" in unified("old\n", "", "f")


# tree_diff


def write(root: Path, rel: str, data: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)


def test_tree_diff_text_binary_only_in_sorted(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    write(old, "same.txt", "same\n")
    write(new, "same.txt", "same\n")
    write(old, "sub/vars.json", '{"nodes": 2}\n')
    write(new, "sub/vars.json", '{"nodes": 4}\n')
    write(old, "blob.bin", b"\x00\x01\x02")
    write(new, "blob.bin", b"\x00\x01\x03")
    write(old, "latin.txt", b"caf\xe9\n")
    write(new, "latin.txt", b"cafe\n")
    write(old, "gone.txt", "x\n")
    write(new, "added/new.txt", "y\n")
    diff = tree_diff(old, new)
    assert list(diff) == ["added/new.txt", "blob.bin", "gone.txt", "latin.txt", "sub/vars.json"]
    assert diff["added/new.txt"] == ONLY_IN_NEW
    assert diff["gone.txt"] == ONLY_IN_OLD
    assert diff["blob.bin"] == BINARY_DIFFERS
    assert diff["latin.txt"] == BINARY_DIFFERS
    assert diff["sub/vars.json"] == unified('{"nodes": 2}\n', '{"nodes": 4}\n', "sub/vars.json")
    assert '-{"nodes": 2}\n+{"nodes": 4}\n' in diff["sub/vars.json"]


def test_tree_diff_identical_trees_and_missing_roots(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    write(old, "a/b.txt", "b\n")
    write(new, "a/b.txt", "b\n")
    assert tree_diff(old, new) == {}
    assert tree_diff(tmp_path / "none", old) == {"a/b.txt": ONLY_IN_NEW}
    assert tree_diff(old, tmp_path / "none") == {"a/b.txt": ONLY_IN_OLD}
    assert tree_diff(tmp_path / "none", tmp_path / "nothing") == {}


def test_tree_diff_identical_binary_is_omitted(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    write(old, "x.bin", b"\x00\xff")
    write(new, "x.bin", b"\x00\xff")
    assert tree_diff(old, new) == {}


# text diffs of outputs (reproduce and diff show what changed)


def test_output_text_diff_small_text(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    write(old, "node-0/out.json", '{"addr": "127.0.1.1"}\n')
    write(new, "node-0/out.json", '{"addr": "127.0.1.2"}\n')
    text = output_text_diff(old, new, "node-0/out.json")
    assert text is not None
    assert text.startswith("--- a/node-0/out.json\n+++ b/node-0/out.json\n")
    assert '-{"addr": "127.0.1.1"}\n' in text and '+{"addr": "127.0.1.2"}\n' in text


@pytest.mark.parametrize("case", ["binary", "not utf-8", "too big", "one side", "escapes",
                                  "same"])
def test_output_text_diff_only_for_small_text_on_both_sides(tmp_path: Path, case: str) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    rel = "out.txt"
    a, b = {
        "binary": (b"a\0b", b"a\0c"),
        "not utf-8": (b"\xff\xfe", b"\xff\xfd"),
        "too big": (b"x" * (TEXT_DIFF_LIMIT + 1), b"y\n"),
        "one side": (b"a\n", None),
        "escapes": (b"a\n", b"b\n"),
        "same": (b"a\n", b"a\n"),
    }[case]
    write(old, rel, a)
    if b is not None:
        write(new, rel, b)
    if case == "escapes":
        write(tmp_path, "outside.txt", "secret\n")
        rel = "../outside.txt"
    assert output_text_diff(old, new, rel) is None


def test_with_text_diffs_only_for_changed_files(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    write(old, "a.txt", "one\n")
    write(new, "a.txt", "two\n")
    write(new, "b.txt", "added\n")
    changes = [FileChange("a.txt", "changed", "1", "2", 4, 4),
               FileChange("b.txt", "added", None, "3", None, 6)]
    got = with_text_diffs(changes, old, new)
    assert got[0].diff is not None and "-one\n+two\n" in got[0].diff
    assert got[1].diff is None


def _recorded(tmp_path: Path, old_text: str) -> tuple[Recorded, Spec, Path]:
    job = tmp_path / "job" / "job.toml"
    job.parent.mkdir()
    text = ('[job]\nname = "j"\n[cluster]\ntarget = "local"\nnodes = 1\n'
            '[run]\ncommand = ["true"]\n[outputs]\npaths = ["*.txt"]\nfrom = "head"\n')
    job.write_text(text)
    root = tmp_path / "record"
    write(root, "outputs/log.txt", old_text)
    manifest = {"files": [{"path": "log.txt", "size": len(old_text), "sha256": "old"}]}
    recorded = Recorded("r1", root, text, {}, manifest, {"status": "succeeded"})
    return recorded, parse_spec(text, job), tmp_path / "staged"


def test_reproduce_verdict_shows_a_unified_diff(tmp_path: Path) -> None:
    recorded, spec, staged = _recorded(tmp_path, "loss 0.5\n")
    write(staged, "outputs/log.txt", "loss 0.25\n")
    write(staged, "outputs/manifest.json", json.dumps(
        {"files": [{"path": "log.txt", "size": 10, "sha256": "new"}]}))
    result = Result("r2", "j", 1, "ssh", "embedded", "now", status="succeeded")
    v = verdict(recorded, spec, staged, result, [])
    assert v["verdict"] == "differs"
    [change] = v["files"]
    assert change["path"] == "log.txt" and "-loss 0.5\n+loss 0.25\n" in change["diff"]
    text = format_verdict({**v, "run_id": "r2"})
    assert "    -loss 0.5" in text and "    +loss 0.25" in text
    assert "    --- a/log.txt" in text
