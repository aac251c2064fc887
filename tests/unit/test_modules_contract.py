"""Every Terraform module under modules/ keeps its contract, and what composer renders is
formatted and valid Terraform."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from composer.engine import Engine, TerraformResult, make_engine
from composer.modules import pin_module, pins_for_target
from composer.render import render
from composer.spec import load_spec

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODULES = PROJECT_ROOT / "modules"
MODULE_DIRS = sorted(p for p in MODULES.iterdir() if p.is_dir())
REQUIRED_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md", "VERSION")
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
BLOCK_HEAD = re.compile(r'^([A-Za-z_][\w-]*)((?:\s+"[^"\n]*")*)\s*\{', re.MULTILINE)
ATTRIBUTE = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*=(?!=)")
HEREDOC = re.compile(r"<<-?([A-Za-z_]\w*)\n")
OPENERS = {"{": "}", "[": "]", "(": ")"}


@dataclass(frozen=True)
class Block:
    kind: str
    labels: tuple[str, ...]
    body: str
    masked_body: str

    def attributes(self) -> set[str]:
        """Names assigned at the top level of the body, not in nested blocks or values."""
        names: set[str] = set()
        depth = 0
        for line in self.masked_body.splitlines():
            if depth == 0 and (match := ATTRIBUTE.match(line)):
                names.add(match.group(1))
            depth += sum(line.count(c) for c in OPENERS) - sum(
                line.count(c) for c in OPENERS.values()
            )
        return names


def _end_of_string(text: str, start: int) -> int:
    """Index just past the quoted string opening at ``start``, template sequences included."""
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
        elif char == '"':
            return i + 1
        elif text.startswith(("${", "%{"), i) and not text.startswith(("$${", "%%{"), i - 1):
            i = _end_of_expression(text, i + 2)
        else:
            i += 1
    raise ValueError(f"unterminated string at offset {start}")


def _end_of_expression(text: str, start: int) -> int:
    """Index just past the ``}`` closing a template sequence whose body starts at ``start``."""
    depth = 1
    i = start
    while i < len(text):
        char = text[i]
        if char == '"':
            i = _end_of_string(text, i)
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unterminated template sequence at offset {start}")


def mask(text: str) -> str:
    """``text`` with string contents, heredoc bodies and comments blanked, newlines kept."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == '"':
            end = _end_of_string(text, i)
            out.append('"' + re.sub(r"[^\n]", " ", text[i + 1 : end - 1]) + '"')
            i = end
        elif char == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif text.startswith("/*", i):
            end = text.index("*/", i) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif (heredoc := HEREDOC.match(text, i)) is not None:
            closing = re.compile(rf"^\s*{heredoc.group(1)}\s*$", re.MULTILINE)
            found = closing.search(text, heredoc.end())
            if found is None:
                raise ValueError(f"unterminated heredoc at offset {i}")
            out.append(re.sub(r"[^\n]", " ", text[i : found.end()]))
            i = found.end()
        else:
            out.append(char)
            i += 1
    masked = "".join(out)
    assert len(masked) == len(text)
    return masked


def blocks(text: str) -> list[Block]:
    """The top-level blocks of an HCL file."""
    masked = mask(text)
    found: list[Block] = []
    pos = 0
    while (head := BLOCK_HEAD.search(masked, pos)) is not None:
        open_at = head.end() - 1
        depth = 0
        for i in range(open_at, len(masked)):
            if masked[i] == "{":
                depth += 1
            elif masked[i] == "}":
                depth -= 1
                if depth == 0:
                    close_at = i
                    break
        else:
            raise ValueError(f"unbalanced braces after {head.group(0)!r}")
        labels = tuple(re.findall(r'"([^"\n]*)"', text[head.start(2) : head.end(2)]))
        found.append(
            Block(
                head.group(1), labels, text[open_at + 1 : close_at], masked[open_at + 1 : close_at]
            )
        )
        pos = close_at + 1
    return found


def _module_blocks(path: Path, kind: str) -> list[Block]:
    return [b for f in sorted(path.glob("*.tf")) for b in blocks(f.read_text()) if b.kind == kind]


def test_parser_reads_nested_blocks_strings_and_comments() -> None:
    text = (
        '# variable "ignored" {\n'
        'variable "a" {\n'
        '  description = "braces { in } text and ${join("}", ["x"])}"\n'
        "  type        = list(string)\n"
        "  validation {\n"
        '    condition     = can(regex("^[0-9]{1,3}$", var.a))\n'
        '    error_message = "nested"\n'
        "  }\n"
        "}\n"
        'variable "c" {\n'
        '  description = "type only in a nested block"\n'
        "  validation {\n"
        "    type = string\n"
        "  }\n"
        "  default = {\n"
        '    type = "x"\n'
        "  }\n"
        "}\n"
        '/* output "hidden" { } */\n'
        'output "b" {\n'
        "  value = <<EOT\n"
        "  description = {\n"
        "EOT\n"
        "}\n"
    )
    found = blocks(text)
    assert [(b.kind, b.labels) for b in found] == [
        ("variable", ("a",)),
        ("variable", ("c",)),
        ("output", ("b",)),
    ]
    assert found[0].attributes() == {"description", "type"}
    assert found[1].attributes() == {"description", "default"}
    assert found[2].attributes() == {"value"}
    assert 'regex("^[0-9]{1,3}$", var.a)' in found[0].body


def test_there_are_modules() -> None:
    assert MODULE_DIRS, f"no modules under {MODULES}"


@pytest.fixture(params=MODULE_DIRS, ids=[p.name for p in MODULE_DIRS])
def module(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def test_module_has_required_files(module: Path) -> None:
    missing = [name for name in REQUIRED_FILES if not (module / name).is_file()]
    assert not missing, f"{module.name} lacks {missing}"


def test_module_version_is_semver(module: Path) -> None:
    version = (module / "VERSION").read_text().strip()
    assert SEMVER.fullmatch(version), f"{module.name}/VERSION is {version!r}, not semver"
    assert pin_module(module.name).version == version


def test_every_variable_has_description_and_type(module: Path) -> None:
    variables = _module_blocks(module, "variable")
    assert variables, f"{module.name} declares no variables"
    for block in variables:
        assert len(block.labels) == 1, block.labels
        missing = {"description", "type"} - block.attributes()
        assert not missing, f'{module.name}: variable "{block.labels[0]}" lacks {sorted(missing)}'
        assert re.search(r'description\s*=\s*"\S', block.body), block.labels[0]


def test_every_output_has_description(module: Path) -> None:
    outputs = _module_blocks(module, "output")
    assert outputs, f"{module.name} declares no outputs"
    for block in outputs:
        assert len(block.labels) == 1, block.labels
        assert "description" in block.attributes(), (
            f'{module.name}: output "{block.labels[0]}" lacks a description'
        )
        assert "value" in block.attributes()


def test_versions_tf_requires_a_terraform_version(module: Path) -> None:
    terraform = [b for b in blocks((module / "versions.tf").read_text()) if b.kind == "terraform"]
    assert len(terraform) == 1
    assert "required_version" in terraform[0].attributes()
    assert re.search(r'required_version\s*=\s*"[^"]*\d', terraform[0].body)


def test_readme_names_every_variable_and_output(module: Path) -> None:
    readme = (module / "README.md").read_text()
    names = [b.labels[0] for b in _module_blocks(module, "variable")]
    names += [b.labels[0] for b in _module_blocks(module, "output")]
    missing = [name for name in names if f"`{name}`" not in readme]
    assert not missing, f"{module.name}/README.md does not mention {missing}"


def test_rendered_root_declares_described_typed_variables(tmp_path: Path) -> None:
    spec = load_spec(PROJECT_ROOT / "examples" / "hello-mpi" / "job.toml")
    out = tmp_path / "out"
    render(spec, pins_for_target("local"), out)
    variables = _module_blocks(out, "variable")
    outputs = _module_blocks(out, "output")
    tfvars = json.loads((out / "terraform.tfvars.json").read_text())
    assert {b.labels[0] for b in variables} >= set(tfvars)
    for block in variables:
        assert {"description", "type"} <= block.attributes(), block.labels
    for block in outputs:
        assert "description" in block.attributes(), block.labels
    [module_call] = _module_blocks(out, "module")
    assert module_call.labels == ("cluster",)


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "composer-home"))
    return make_engine("embedded")


def _rendered(tmp_path: Path, example: str = "hello-mpi") -> Path:
    spec = load_spec(PROJECT_ROOT / "examples" / example / "job.toml")
    out = tmp_path / "rendered"
    render(spec, pins_for_target(spec.cluster.target), out)
    return out


def _explain(result: TerraformResult) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


FMT_CHECK = ["fmt", "-check", "-diff", "-no-color"]


@pytest.mark.integration
def test_modules_are_terraform_fmt_clean(engine: Engine) -> None:
    result = engine.run([*FMT_CHECK, "-recursive"], cwd=MODULES, check=False)
    assert result.returncode == 0, _explain(result)


@pytest.mark.integration
def test_rendered_root_files_are_terraform_fmt_clean(engine: Engine, tmp_path: Path) -> None:
    out = _rendered(tmp_path)
    result = engine.run(FMT_CHECK, cwd=out, check=False)
    assert result.returncode == 0, _explain(result)
    root_files = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")
    assert all((out / name).is_file() for name in root_files)


@pytest.mark.integration
def test_rendered_tree_is_terraform_fmt_clean(engine: Engine, tmp_path: Path) -> None:
    out = _rendered(tmp_path)
    result = engine.run([*FMT_CHECK, "-recursive"], cwd=out, check=False)
    assert result.returncode == 0, _explain(result)


@pytest.mark.integration
def test_fmt_check_catches_misformatted_files(engine: Engine, tmp_path: Path) -> None:
    out = _rendered(tmp_path)
    (out / "extra.tf").write_text("locals {\n  a = 1\n  bb  = 2\n}\n")
    result = engine.run(FMT_CHECK, cwd=out, check=False)
    assert result.returncode != 0
    assert "extra.tf" in result.stdout


@pytest.mark.integration
def test_rendered_tree_validates_after_init(engine: Engine, tmp_path: Path) -> None:
    rendered = _rendered(tmp_path)
    work = tmp_path / "copy"
    shutil.copytree(rendered, work, symlinks=True)
    init = engine.run(
        ["init", "-input=false", "-no-color", "-backend=false"], cwd=work, check=False
    )
    assert init.returncode == 0, _explain(init)
    result = engine.run(["validate", "-json", "-no-color"], cwd=work, check=False)
    assert result.returncode == 0, _explain(result)
    report = json.loads(result.stdout)
    assert report["valid"] is True, report
    assert report["error_count"] == 0, report
    assert not (work / ".terraform.lock.hcl").exists()
    assert not (rendered / ".terraform").exists()
