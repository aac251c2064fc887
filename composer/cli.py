"""The composer command line: parse flags, call one function, print the result.

Every ``ComposerError`` ends in ``_fail``: one message and a hint on stderr and
the error's exit code; a traceback only with ``--debug``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from composer import __version__
from composer.cliparams import install as quick_params
from composer.errors import ComposerError, ExitCode, UsageError
from composer.terminal import guard_std_streams

if TYPE_CHECKING:
    from composer.record import RunsRepo
    from composer.targets.base import GcRequest

T = TypeVar("T")
app = typer.Typer(
    no_args_is_help=True, pretty_exceptions_enable=False,
    help="Reproducible ML runs on ephemeral clusters, recorded in git.",
)

JobArg = Annotated[Path, typer.Argument(help="the job spec (job.toml)", show_default=False)]
RunsRepoOpt = Annotated[
    str | None,
    typer.Option("--runs-repo", help="runs repository [env COMPOSER_RUNS_REPO; default ./runs]"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]
RemoteOpt = Annotated[str, typer.Option("--remote", help="the runs repository's git remote")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="show tracebacks")]


def _fail(
    exc: ComposerError, as_json: bool, debug: bool, extra: dict[str, Any] | None = None
) -> NoReturn:
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    print(f"composer: error: {exc.message}", file=sys.stderr)
    if exc.hint:
        print(f"composer: hint: {exc.hint}", file=sys.stderr)
    if as_json:
        payload = {**(extra or {}), "error": exc.message, "exit_code": int(exc.exit_code)}
        if exc.hint:
            payload["hint"] = exc.hint
        problems = getattr(exc, "problems", None)
        if problems is not None:
            payload["problems"] = [{"path": p.path, "message": p.message} for p in problems]
        _emit(payload)
    raise typer.Exit(int(exc.exit_code))


def _call(fn: Callable[[], T], as_json: bool = False, debug: bool = False,
          extra: dict[str, Any] | None = None) -> T:
    try:
        return fn()
    except ComposerError as exc:
        _fail(exc, as_json, debug, extra)


def _repo(cli_value: str | None, spec_value: str | None = None,
          spec_file: Path | None = None) -> RunsRepo:
    """The runs repository a command reads or writes, knowing which setting chose it."""
    from composer.record import choose_repo

    return choose_repo(cli_value, spec_value, Path.cwd(), spec_file)


READ_FROM = ("composer reads runs from --runs-repo PATH, else COMPOSER_RUNS_REPO, else "
             "./runs in the current directory (a job's [record] repo is read only by up)")



_EMITTED: list[bool] = []


def _emit(data: Any) -> None:
    """The one JSON object a ``--json`` command prints on stdout."""
    print(json.dumps(data, sort_keys=True))
    _EMITTED.append(True)


@app.command()
def up(
    job: JobArg,
    runs_repo: RunsRepoOpt = None,
    keep: Annotated[bool, typer.Option("--keep", help="keep the cluster after the run")] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="embedded | terraform | tofu")
    ] = "embedded",
    push: Annotated[
        bool, typer.Option("--push", help="then push the record to the runs repository's "
                           "remote (see composer push)")
    ] = False,
    remote: RemoteOpt = "origin",
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Render, apply, run, collect, destroy, and commit the run's record."""
    from composer.result import NO_OUTCOME
    from composer.run import Run, RunOptions
    from composer.spec import load_spec

    empty = {**NO_OUTCOME, "status": "invalid"}
    spec = _call(lambda: load_spec(job), as_json, debug, empty)
    repo = _repo(runs_repo, spec.record.repo, spec.source)
    if push:
        from composer.push import check_remote

        _call(lambda: check_remote(repo, remote), as_json, debug, empty)
    opts = RunOptions(
        runs_repo=repo.path, engine=engine, keep=keep,
        echo=sys.stderr if as_json else sys.stdout,
    )
    outcome = _call(lambda: Run(spec, opts).execute(), as_json, debug,
                    {**empty, "status": "error"})
    answer = outcome.to_json()
    code = outcome.exit_code
    if push and outcome.record is not None:
        pushed, pushed_code = _push_after(repo, remote, as_json, debug)
        answer["push"] = pushed
        code = code or pushed_code
    if as_json:
        _emit(answer)
    raise typer.Exit(code)


def _push_after(repo: RunsRepo, remote: str, as_json: bool,
                debug: bool) -> tuple[dict[str, Any], int]:
    """``up --push``: push after the record is committed; a failure is said, not raised."""
    from composer.push import push as do_push

    try:
        result = do_push(repo, remote, say=_say)
    except ComposerError as exc:
        if debug:
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        print(f"composer: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"composer: hint: {exc.hint}", file=sys.stderr)
        return {"pushed": False, "error": exc.message, "exit_code": int(exc.exit_code)}, \
            int(exc.exit_code)
    _say_pushed(result)
    return result.to_json(), 0


def _say(text: str) -> None:
    print(f"composer: {text}", file=sys.stderr)


def _say_pushed(result: Any) -> None:
    for warning in result.warnings:
        _say(f"warning: {warning}")
    runs = ", ".join(result.runs) if result.runs else "no new runs"
    _say(f"pushed to {result.remote} ({result.url}) {result.branch} at "
         f"{result.commit[:12]}: {runs}"
         + (f" (attempt {result.attempts})" if result.attempts > 1 else ""))


@app.command()
def validate(job: JobArg, as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Check a job spec; report every problem with its field path."""
    from composer.errors import SpecError
    from composer.spec import expanded, load_spec

    try:
        spec = load_spec(job)
    except SpecError as exc:
        if as_json:
            _emit({"valid": False, "problems": [p.__dict__ for p in exc.problems],
                   "error": exc.message, "hint": exc.hint, "exit_code": int(exc.exit_code)})
            print(exc.message, file=sys.stderr)
            raise typer.Exit(int(exc.exit_code)) from None
        _fail(exc, False, debug)
    if as_json:
        _emit({"valid": True, "spec": expanded(spec)})
    else:
        offline = "" if spec.cluster.target == "local" else \
            f"; {spec.cluster.target}'s own checks (credentials, types, image, quota) run " \
            "at up"
        print(f"{job}: ok ({spec.job.name}, {spec.cluster.nodes} node(s), "
              f"{spec.run.launcher}{offline})")


@app.command()
def schema(as_json: JsonOpt = False) -> None:
    """Print the job spec's JSON Schema (composer.schema.json), for editors that check TOML.
    The output is JSON with or without --json."""
    from composer.spec.schema import schema_text

    sys.stdout.write(schema_text())


@app.command()
def render(
    job: JobArg,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="directory to write (new or empty)")
    ],
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write the Terraform root module of a job spec, without applying it."""
    from composer.modules import pins_for_target
    from composer.render import render as render_tree
    from composer.spec import load_spec

    def go() -> str:
        spec = load_spec(job)
        return render_tree(spec, pins_for_target(spec.cluster.target), output).sha256

    digest = _call(go, as_json, debug, {"path": str(output), "sha256": None})
    if as_json:
        _emit({"path": str(output), "sha256": digest})
    else:
        print(f"rendered {output} (sha256 {digest})")


@app.command()
def runs(
    runs_repo: RunsRepoOpt = None, as_json: JsonOpt = False, debug: DebugOpt = False
) -> None:
    """List the recorded runs; CLUSTER says "up" where a kept cluster still runs."""
    from dataclasses import replace

    from composer.down import live_clusters

    repo = _repo(runs_repo)
    summaries = _call(repo.list_runs, as_json, debug)
    live = live_clusters()
    summaries = [replace(s, cluster_up=s.run_id in live) for s in summaries]
    if not summaries:
        print(f"composer: no recorded runs in {repo.describe()}", file=sys.stderr)
        print(f"composer: hint: {READ_FROM}", file=sys.stderr)
    if as_json:
        _emit({"runs": [s.__dict__ for s in summaries]})
        return
    if not summaries:
        return
    from composer.cost import cost_cell

    rows = [("RUN", "JOB", "STATUS", "NODES", "DURATION", "COST", "STARTED", "CLUSTER")]
    for s in summaries:
        duration = f"{s.duration_s:.1f}s" if s.duration_s is not None else "-"
        rows.append((s.run_id, s.job, s.status, str(s.nodes), duration, cost_cell(s.cost),
                     s.started_at, "up" if s.cluster_up else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if any(s.cluster_up for s in summaries):
        print("a cluster marked up still runs; composer down RUN removes it")


@app.command()
def show(run: Annotated[str, typer.Argument(help="run id, unique prefix, or run/<id>")],
         runs_repo: RunsRepoOpt = None,
         open_readme: Annotated[
             bool, typer.Option("--open", help="print the path of the run's README.md in "
                                "the runs repository's work tree")
         ] = False,
         as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Show what a run's record holds."""
    from composer.records.view import format_show, readme_path

    repo = _repo(runs_repo)
    data = _call(lambda: repo.show(run), as_json, debug)
    readme = readme_path(repo.path, data)
    if open_readme:
        path = _call(lambda: readme_path(repo.path, data, required=True), as_json, debug)
        if as_json:
            _emit({"run_id": data["run_id"], "readme": str(path)})
        else:
            print(path)
        return
    if as_json:
        _emit({**data, "readme": None if readme is None else str(readme)})
        return
    sys.stdout.write(format_show(data, None if readme is None else str(readme)))


@app.command()
def down(run: Annotated[str, typer.Argument(help="run id or unique prefix")],
         runs_repo: Annotated[
             str | None,
             typer.Option("--runs-repo", help="runs repository (env COMPOSER_RUNS_REPO; "
                          "default: the one the run was started with)"),
         ] = None,
         as_json: JsonOpt = False, debug: DebugOpt = False) -> None:
    """Destroy a kept or abandoned run's cluster from its work dir; record the outcome."""
    from composer.down import GONE
    from composer.down import down as do_down

    outcome = _call(lambda: do_down(run, runs_repo), as_json, debug)
    status = outcome["teardown"]["status"]
    if as_json:
        _emit(outcome)
    elif outcome.get("already_destroyed"):
        print(f"{outcome['run_id']}: already {status}; nothing to do")
    else:
        print(f"{outcome['run_id']}: {status}"
              + (f"; record {outcome['record']}" if outcome["record"] else ""))
    if status not in GONE:
        if not as_json and outcome["teardown"].get("error"):
            hint = outcome["teardown"].get("hint")
            print(f"composer: error: {outcome['teardown']['error']}", file=sys.stderr)
            if hint:
                print(f"composer: hint: {hint}", file=sys.stderr)
        raise typer.Exit(int(ExitCode.INFRA_FAILED))


@app.command()
def reproduce(
    run: Annotated[str | None, typer.Argument(help="run id, unique prefix, or run/<id>")] = None,
    latest: Annotated[
        str | None, typer.Option("--latest", help="the newest run of this job")
    ] = None,
    job: Annotated[
        Path | None, typer.Option("--job", help="the job file, if it moved since the run")
    ] = None,
    allow_drift: Annotated[
        bool, typer.Option("--allow-drift", help="run even when pins drifted; record the drift")
    ] = False,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="embedded | terraform | tofu [default: the recorded one]"),
    ] = None,
    runs_repo: RunsRepoOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Recreate a recorded run and say whether its results match."""
    from composer.reproduce import DriftError, format_verdict
    from composer.reproduce import reproduce as do_reproduce
    from composer.run import RunOptions

    if (run is None) == (latest is None):
        _fail(UsageError("give a run, or --latest JOB"), as_json, debug)
    from composer.reproduce import record_repo_of

    repo = _repo(runs_repo, record_repo_of(job), job)
    opts = RunOptions(runs_repo=repo.path, echo=sys.stderr if as_json else sys.stdout)
    try:
        verdict = do_reproduce(run, opts, job, allow_drift, latest, engine, repo.source)
    except DriftError as exc:
        drift = {"run_id": None, "reproduces": exc.run_id, "verdict": "drift",
                 "drift": [d.to_dict() for d in exc.drifts], "record": None}
        _fail(exc, as_json, debug, drift)
    except ComposerError as exc:
        _fail(exc, as_json, debug, {"run_id": None, "verdict": None, "record": None})
    if as_json:
        _emit(verdict)
    else:
        print(format_verdict(verdict))
    raise typer.Exit(verdict["exit_code"])


@app.command()
def diff(
    run_a: Annotated[str, typer.Argument(help="first run")],
    run_b: Annotated[str, typer.Argument(help="second run")],
    runs_repo: RunsRepoOpt = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """What differs between two runs: spec, lock, infra, facts, environment, results."""
    from composer.diff import diff_runs, format_diff

    repo = _repo(runs_repo)
    data = _call(lambda: diff_runs(repo, run_a, run_b), as_json, debug)
    if as_json:
        _emit(data)
    else:
        print(format_diff(data), end="")


@app.command()
def site(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="directory to write (new, empty, or an "
                           "earlier site)")
    ],
    runs_repo: RunsRepoOpt = None,
    pair: Annotated[
        tuple[str, str] | None,
        typer.Option("--diff", metavar="A B", help="also a diff page of these two runs "
                     "(each run is compared with the previous run of its job anyway)"),
    ] = None,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a static site of the recorded runs: a filterable list, a page per run, diffs."""
    from composer.site.build import build_site

    repo = _repo(runs_repo)
    built = _call(lambda: build_site(repo, output, [pair] if pair else []), as_json, debug,
                  {"path": str(output)})
    if not built.runs:
        print(f"composer: no recorded runs in {repo.describe()}", file=sys.stderr)
        print(f"composer: hint: {READ_FROM}", file=sys.stderr)
    if as_json:
        _emit(built.to_json())
    else:
        print(f"wrote {output}: {len(built.runs)} run pages, {len(built.diffs)} diff pages "
              f"(open {output / 'index.html'})")


def _gc_target(name: str, ask: GcRequest, as_json: bool, debug: bool) -> None:
    """``gc --target``: the target's tagged resources whose run is over."""
    from composer.targets import get_target

    items, warnings = _call(lambda: get_target(name).garbage(ask), as_json, debug)
    failed = [item for item in items if item.get("outcome") == "failed"]
    if as_json:
        where = {"project": ask.project} if name == "gcp" else {"region": ask.region}
        _emit({"target": name, **where, "resources": items,
               "warnings": warnings, "failed": len(failed)})
    else:
        for warning in warnings:
            print(f"composer: warning: {warning}", file=sys.stderr)
        if not items:
            print(f"nothing to collect in {name} {ask.project or ask.region or ''}".rstrip())
        for item in items:
            outcome = f" -> {item['outcome']}" if "outcome" in item else ""
            error = f": {item['error']}" if item.get("error") else ""
            print(f"{item['kind']} {item['id']}  run={item['run_id']}  {item['reason']}  "
                  f"{item['action']}{outcome}{error}")
        if not ask.remove and any(item["action"] == "remove" for item in items):
            import shlex

            flags = ["--target", name] + (["--region", ask.region] if ask.region else [])
            flags += ["--project", ask.project] if ask.project else []
            flags += ["--include-kept"] if ask.include_kept else []
            flags += ["--include-others"] if ask.include_others else []
            print(f"run composer gc {shlex.join(flags)} --yes to remove them")
    if failed:
        print(f"composer: error: {len(failed)} of the resources could not be removed",
              file=sys.stderr)
        raise typer.Exit(int(ExitCode.INFRA_FAILED))


@app.command()
def gc(
    yes: Annotated[bool, typer.Option("--yes", help="destroy what is listed")] = False,
    include_kept: Annotated[
        bool, typer.Option("--include-kept", help="also clusters kept with --keep")
    ] = False,
    runs_repo: Annotated[
        str | None,
        typer.Option("--runs-repo", help="runs repository (env COMPOSER_RUNS_REPO; "
                     "default: the one each run was started with)"),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", help="a cloud target (aws, gcp): list resources labelled "
                     "with a run id whose run is over, in --region (aws) or --project (gcp)"),
    ] = None,
    region: Annotated[
        str | None, typer.Option("--region", help="with --target aws (default: AWS_REGION)")
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", help="with --target gcp (default: "
                                 "GOOGLE_CLOUD_PROJECT)")
    ] = None,
    include_others: Annotated[
        bool, typer.Option("--include-others", help="with --target: also unexpired runs "
                           "this machine did not start (another machine's, CI's)")
    ] = False,
    state: Annotated[
        bool, typer.Option("--state", help="recorded runs whose state bucket still holds "
                           "resources (read through Terraform's backend)")
    ] = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List runs whose process is gone but whose nodes remain; --yes removes them."""
    from composer.gc import collect_garbage, runs_here
    from composer.targets.base import GcRequest

    if state:
        _gc_state(yes, runs_repo, target or region or project or include_kept
                  or include_others, as_json, debug)
        return
    if target not in (None, "local"):
        if runs_repo is not None:
            _fail(UsageError("--runs-repo does not apply with --target: cloud resources "
                             "are removed, no record is written",
                             hint="leave out --runs-repo"), as_json, debug)
        wrong = {"aws": ("--project", project), "gcp": ("--region", region)}.get(target)
        if wrong is not None and wrong[1] is not None:
            _fail(UsageError(f"{wrong[0]} does not apply with --target {target}",
                             hint="--region goes with --target aws, --project with "
                                  "--target gcp"), as_json, debug)
        if target == "gcp" and project is None:
            project = os.environ.get("GOOGLE_CLOUD_PROJECT") or None
        ask = GcRequest(region, runs_here(), yes, include_kept, include_others, project)
        _gc_target(target, ask, as_json, debug)
        return
    if region is not None or project is not None or include_others:
        flag = "--region" if region is not None else \
            "--project" if project is not None else "--include-others"
        fix = {"--region": "add --target aws", "--project": "add --target gcp"}.get(
            flag, "add --target aws or --target gcp")
        _fail(UsageError(f"{flag} applies only with --target",
                         hint=f"{fix}, or leave it out"), as_json, debug)
    report = _call(lambda: collect_garbage(yes, include_kept, runs_repo), as_json, debug)
    failed = [item for item in report if item.get("outcome") == "failed"]
    if as_json:
        _emit({"runs": report, "failed": len(failed)})
    elif not report:
        print("nothing to collect")
    else:
        for item in report:
            outcome = f" -> {item['outcome']}" if "outcome" in item else ""
            error = f": {item['error']}" if item.get("error") else ""
            print(f"{item['run_id']}  job={item['job']}  stage={item['stage']}  "
                  f"process={item['process']}  nodes={item['nodes_running']}  "
                  f"{item['action']}{outcome}{error}")
        if not yes and any(i["action"] in ("down", "kill") for i in report):
            import shlex

            flags = ["--yes"] + (["--include-kept"] if include_kept else [])
            flags += ["--runs-repo", runs_repo] if runs_repo else []
            print(f"run composer gc {shlex.join(flags)} to remove them")
    if failed:
        print(f"composer: error: {len(failed)} of the runs could not be removed",
              file=sys.stderr)
        raise typer.Exit(int(ExitCode.INFRA_FAILED))


def _gc_state(yes: bool, runs_repo: str | None, other_flags: object, as_json: bool,
              debug: bool) -> None:
    """``composer gc --state``: see composer/remote_runs.py."""
    from composer.remote_runs import state_garbage

    if other_flags:
        _fail(UsageError("--state lists recorded runs by their state in a bucket; --target, "
                         "--region, --project, --include-kept and --include-others do not "
                         "apply", hint="leave them out, or run gc without --state"),
              as_json, debug)
    report = _call(lambda: state_garbage(yes, runs_repo), as_json, debug)
    failed = [item for item in report if item.get("outcome") == "failed"]
    if as_json:
        _emit({"runs": report, "failed": len(failed)})
    elif not report:
        print("no recorded run's state holds resources")
    for item in [] if as_json else report:
        outcome = f" -> {item['outcome']}" if "outcome" in item else ""
        error = f": {item['error']}" if item.get("error") else ""
        print(f"{item['run_id']}  job={item['job']}  state={item['state']}  "
              f"resources={item['resources']}  {item['action']}{outcome}{error}")
    if report and not yes and not as_json and any(i["action"] == "down" for i in report):
        print("run composer gc --state --yes to bring them down")
    if failed:
        print(f"composer: error: {len(failed)} of the runs could not be removed",
              file=sys.stderr)
        raise typer.Exit(int(ExitCode.INFRA_FAILED))


def _split_command(words: list[str], argv: list[str]) -> tuple[str, str | None, list[str]]:
    """RUN, NODE and the words after ``--`` (click drops the ``--`` itself)."""
    after = len(argv) - argv.index("--") - 1 if "--" in argv else max(len(words) - 2, 0)
    before, command = words[: len(words) - after], words[len(words) - after:]
    if not before or len(before) > 2:
        raise UsageError("usage: composer ssh RUN [NODE] [-- COMMAND...]",
                         hint="put the command to run after --")
    return before[0], (before[1] if len(before) == 2 else None), command


@app.command()
def ssh(
    words: Annotated[
        list[str], typer.Argument(metavar="RUN [NODE] [-- COMMAND...]", show_default=False,
                                  help="run id or prefix; node-<rank> or a rank "
                                       "[default: node-0]; a command, each word quoted")
    ],
    debug: DebugOpt = False,
) -> None:
    """Open OpenSSH to a node of a live (kept) cluster: the run's key, pinned host keys."""
    import getpass

    from composer.ssh import prepare

    def go() -> list[str]:
        run, node, command = _split_command(words, sys.argv)
        return prepare(run, node, command, getpass.getuser(), sys.stdin.isatty())

    argv = _call(go, debug=debug)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


@app.command()
def version(as_json: JsonOpt = False) -> None:
    """Print composer's version, and where its package, modules and templates come from."""
    from composer.resources import where

    package = str(Path(__file__).resolve().parent)
    found = where()
    if as_json:
        _emit({"version": __version__, "package": package,
               **{kind: loc.to_dict() for kind, loc in found.items()}})
        return
    print(f"composer {__version__} (composer-runs)")
    print(f"package    {package}")
    for kind, loc in found.items():
        print(f"{kind:<10} {loc.path} ({loc.source})")


@app.command()
def push(
    runs_repo: RunsRepoOpt = None,
    remote: RemoteOpt = "origin",
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Push the runs repository's new records (commits and run tags) to its remote.
    When another push got there first: fetch, replay, retry; never a force-push."""
    from composer.push import push as do_push

    repo = _repo(runs_repo)
    result = _call(lambda: do_push(repo, remote, say=_say), as_json, debug,
                   {"pushed": False, "remote": remote})
    if as_json:
        _emit(result.to_json())
    else:
        _say_pushed(result)


@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="where to write the project (created if missing)")
    ] = Path("."),
    example: Annotated[
        str, typer.Option("--example", help="the example to start from (see --list)")
    ] = "starter",
    list_examples: Annotated[
        bool, typer.Option("--list", help="list the examples and exit")
    ] = False,
    as_json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Start a project: write an example's job.toml and code into DIRECTORY.
    Nothing existing is overwritten."""
    from composer import starter

    if list_examples:
        known = _call(starter.examples, as_json, debug)
        if as_json:
            _emit({"examples": [{"name": e.name, "description": e.description}
                                for e in known]})
        for e in [] if as_json else known:
            print(f"{e.name:<16} {e.description}".rstrip())
        return
    written = _call(lambda: starter.init(directory, example), as_json, debug)
    if as_json:
        _emit({"directory": str(directory), "example": written.example,
               "files": list(written.files),
               "job": str(written.job) if written.job is not None else None})
        return
    print(f"wrote {len(written.files)} files of the '{written.example}' example into "
          f"{directory}: {', '.join(written.files)}")
    if written.job is not None:
        print(f"next: composer validate {written.job}; composer up {written.job}")


@app.callback(invoke_without_command=True)
def _root(
    show_version: Annotated[
        bool, typer.Option("--version", help="print composer's version and exit")
    ] = False,
) -> None:
    if show_version:
        print(f"composer {__version__}")
        raise typer.Exit(0)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    guard_std_streams()
    quick_params()
    try:
        app()
    except SystemExit as exc:
        # A command line that did not parse is reported on stderr before any
        # command runs; --json still gets its one object on stdout.
        if "--json" in sys.argv[1:] and not _EMITTED and exc.code not in (0, None):
            code = exc.code if isinstance(exc.code, int) else int(ExitCode.INVALID_INPUT)
            said = f"interrupted by signal {code - 128}" if code in (130, 143) else \
                "invalid command line (see stderr)"
            _emit({"error": said, "exit_code": code})
        raise


def entry() -> NoReturn:
    """The process's entry point (composer_runs.main, ``python -m composer``): ``main``,
    then ``leave`` with its exit status."""
    try:
        main()
    except SystemExit as exc:
        leave(exc.code)
    leave(0)


def leave(code: object) -> NoReturn:
    """End the process as ``SystemExit(code)`` would, without the interpreter's
    teardown: freeing every module and object of a finished run takes a tenth of a
    second, after everything that matters is on disk. What is buffered is flushed and
    the atexit hooks run first (temporary directories, logging); the exit status and
    a message for a string code are what Python would give. Only ``entry`` calls it;
    ``main`` raises SystemExit for a caller in the same process."""
    import atexit
    import contextlib

    if isinstance(code, int):
        status = code
    elif code is None:
        status = 0
    else:
        print(code, file=sys.stderr)
        status = 1
    try:
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    finally:
        os._exit(status & 0xFF)


if __name__ == "__main__":
    main()
