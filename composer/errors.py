"""Domain errors and the exit codes they map to.

Every failure a user can cause or meet is a ``ComposerError``: a message, a hint
saying what to do about it, and the process exit code. The CLI turns these into
one line on stderr (plus the hint) and exits; tracebacks appear only with --debug.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of the composer CLI (documented in README.md)."""

    OK = 0
    WORKLOAD_FAILED = 1
    INVALID_INPUT = 2
    DRIFT = 3
    INFRA_FAILED = 4
    DIFFERS = 5
    PUSH_FAILED = 6
    INTERRUPTED = 130
    TERMINATED = 143


class ComposerError(Exception):
    """Base error: a message for people, an optional hint, an exit code."""

    exit_code: ExitCode = ExitCode.INFRA_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(ComposerError):
    """Bad arguments or a missing file named on the command line."""

    exit_code = ExitCode.INVALID_INPUT


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a job spec, at a dotted path such as ``cluster.nodes``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(ComposerError):
    """A job spec with one or more problems; all of them are reported at once."""

    exit_code = ExitCode.INVALID_INPUT

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            f"{source}: {count} {noun}\n{lines}",
            hint="fix the fields named above; docs/spec.md describes every field",
        )


class TerraformError(ComposerError):
    """A Terraform command failed; carries Terraform's own diagnostics."""

    exit_code = ExitCode.INFRA_FAILED

    def __init__(
        self, command: str, returncode: int, diagnostics: list[str], hint: str | None = None
    ) -> None:
        self.command = command
        self.returncode = returncode
        self.diagnostics = list(diagnostics)
        detail = "\n".join(self.diagnostics) or "(Terraform printed no diagnostic)"
        super().__init__(
            f"terraform {command} failed (exit {returncode}):\n{detail}", hint=hint
        )


class SSHError(ComposerError):
    """A node could not be reached or refused us (for instance a host key mismatch)."""

    exit_code = ExitCode.INFRA_FAILED

    def __init__(self, host: str, message: str, hint: str | None = None) -> None:
        self.host = host
        super().__init__(f"{host}: {message}", hint=hint)


class PreflightError(ComposerError):
    """Something the machine lacks before any infrastructure is created."""

    exit_code = ExitCode.INVALID_INPUT


class RecordError(ComposerError):
    """The runs repository could not be read or written."""

    exit_code = ExitCode.INFRA_FAILED


class RunNotFound(ComposerError):  # noqa: N818 - reads as a state
    """No run matches the id, prefix or tag given."""

    exit_code = ExitCode.INVALID_INPUT


class Interrupted(ComposerError):  # noqa: N818 - reads as a state, like KeyboardInterrupt
    """The run was stopped by SIGINT or SIGTERM."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}")
        self.exit_code = (
            ExitCode.TERMINATED if signum == signal.SIGTERM else ExitCode.INTERRUPTED
        )
