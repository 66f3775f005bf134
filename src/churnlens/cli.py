"""The ``churnlens`` command line: one sub-command per step, all reading and writing HOME."""

from __future__ import annotations

import json
import os
import sys
import traceback
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import churnlens
from churnlens.engines import EngineError
from churnlens.raw.loader import SourceError
from churnlens.raw.mapping import MappingError
from churnlens.raw.validation import ContractError, ValidationFailed, ValidationReport
from churnlens.settings import DEFAULT_HOME, Settings, load_settings


class _Cli(typer.Typer):
    """The command line, whose every failure ends in one place (:func:`report_failure`).

    A command refuses what it expects to (bad input, a missing step) with its own
    ``Cannot ...`` line; anything else that escapes it, a library's error above all, is a
    defect: it too reads as one line, and its traceback is kept, never lost and never dumped.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except Exception as error:  # click has already turned usage errors and Exit into exits
            sys.exit(report_failure(error))


app = _Cli(
    name="churnlens",
    help="Churn and expansion prediction for SaaS Customer Success teams.\n\n"
         "Every step reads and writes under one project folder (--home, default "
         "./churnlens-data): raw/, features/, the MLflow store, models/, scores/, quarantine/ "
         "and reports/.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
errors = Console(stderr=True)

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="CHURNLENS_HOME", show_envvar=True,
                 help="Project folder every step reads and writes \\[default: ./churnlens-data]."),
]


class _State:
    home: Path | None = None
    command: str = ""
    debug: bool = False


_state = _State()


@app.callback()
def main(ctx: typer.Context, home: HomeOption = None,
         debug: Annotated[bool, typer.Option(
             "--debug", help="Show a failure's full traceback here too (it is always written "
             "to HOME/logs).")] = False) -> None:
    _state.home = home
    _state.command = ctx.invoked_subcommand or ""
    _state.debug = debug


# --------------------------------------------------------------------------- failures


def report_failure(error: BaseException, what: str | None = None) -> int:
    """Say in one line why the command stopped, keep the traceback, and return the exit code.

    ``what`` is what the command could not do, for the refusals it expects (exit 2). An error
    raised inside a library, or one no command expects, is our defect (exit 1): the line names
    the library, so a user can report it. Either way the full traceback is written to
    HOME/logs/<command>-<time>.log, whose path is printed, and shown here with ``--debug``.
    """
    command = _state.command or "churnlens"
    log = _keep_traceback(error, command)
    if what is not None and (error.__traceback__ is None or _raised_by_churnlens(error)):
        errors.print(f"[red]Cannot {what}:[/] {escape(one_line(error))}")
        code = 2
    else:
        library = _raising_package(error)
        inside = f" inside {library}" if library and library != "churnlens" else ""
        errors.print(f"[red]churnlens {command} failed{inside}:[/] "
                     f"{type(error).__name__}: {escape(one_line(error))}")
        code = 1
    if _state.debug:
        errors.print("".join(traceback.format_exception(error)), markup=False,
                     highlight=False)
    if log is not None:
        errors.print(f"Full traceback in {log}" + ("" if _state.debug else
                                                   " (--debug shows it here)"),
                     markup=False, highlight=False, style="dim")
    return code


def one_line(error: BaseException) -> str:
    """The error's message on one line (engines and pydantic spread theirs over several)."""
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__


def _innermost(error: BaseException) -> TracebackType | None:
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb


def _raised_by_churnlens(error: BaseException) -> bool:
    """Whether churnlens' own code raised ``error`` (a deliberate refusal), rather than a
    library it called: a ValueError from scikit-learn is no refusal but a crash."""
    return _raising_package(error) == "churnlens"


def _raising_package(error: BaseException) -> str | None:
    tb = _innermost(error)
    if tb is None:
        return None
    package = str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0]
    if package in ("", "__main__"):  # `python -m churnlens.cli` runs this module as __main__
        inside = Path(tb.tb_frame.f_code.co_filename).resolve()
        return "churnlens" if inside.is_relative_to(_PACKAGE) else None
    return package


_PACKAGE = Path(churnlens.__file__).resolve().parent


def _keep_traceback(error: BaseException, command: str) -> Path | None:
    """Write the traceback under HOME/logs (or the system's temporary folder where HOME
    cannot be written); None if neither can be."""
    import tempfile

    home = _state.home or Path(os.environ.get("CHURNLENS_HOME") or DEFAULT_HOME)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    text = (f"churnlens {' '.join(sys.argv[1:])}\n{datetime.now().isoformat()}\n\n"
            + "".join(traceback.format_exception(error)))
    for folder in (home / "logs", Path(tempfile.gettempdir()) / "churnlens-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{command}-{stamp}.log"
            suffix = 1
            while path.exists():
                suffix += 1
                path = folder / f"{command}-{stamp}-{suffix}.log"
            path.write_text(text)
            return path.resolve()
        except OSError:
            continue
    return None


def refuse(what: str, error: BaseException) -> typer.Exit:
    """The exit for a command's expected refusal: ``raise refuse("train", error) from None``."""
    return typer.Exit(report_failure(error, what))


def _settings(**overrides: object) -> Settings:
    from pydantic import ValidationError

    try:
        settings = load_settings(home=_state.home, **overrides)
    except ValidationError as error:  # name the setting, what is wrong and what was given
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
            + (f" (got {e['input']!r})" if e["loc"] and e["type"] != "missing" else "")
            for e in error.errors())
        raise refuse("use these settings", ValueError(problems)) from None
    except ValueError as error:  # the settings file itself
        raise refuse("use these settings", error) from None
    settings.layout.ensure()
    return settings


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


# --------------------------------------------------------------------------- synth


@app.command()
def synth(
    accounts: Annotated[int, typer.Option(min=1, help="Accounts over the whole history.")] = 2000,
    months: Annotated[int, typer.Option(min=1, max=240, help="Months of history.")] = 24,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 7,
    start: Annotated[str, typer.Option(help="First day of the history (YYYY-MM-DD).")] =
        "2023-01-01",
    dirty: Annotated[bool, typer.Option("--dirty", help="Plant every kind of bad row the "
                                        "validator must catch.")] = False,
    rollouts: Annotated[int, typer.Option(min=1, help="Simulated futures per account-month "
                                          "behind the true probabilities.")] = 32,
    out: Annotated[Path | None, typer.Option(help="Output folder \\[default: HOME/raw].")] = None,
) -> None:
    """Generate a simulated SaaS company: the five contract tables plus the oracle's truth.

    Hidden account health drifts month to month and drives active users, feature breadth,
    tickets, NPS and, at renewals, churn, expansion and downgrades. truth.parquet holds each
    active account-month's true 90-day churn and expansion probability.
    """
    from churnlens.synth import CompanyConfig, generate_company

    settings = _settings()
    target = out or settings.layout.raw
    config = CompanyConfig(accounts=accounts, months=months, seed=seed,
                           start=date.fromisoformat(start), dirty=dirty, rollouts=rollouts)
    with _progress() as progress:
        task = progress.add_task("Simulating months", total=months)
        result = generate_company(config, target,
                                  progress=lambda done, _: progress.update(task, completed=done))
    table = Table(title=f"Generated company (seed {seed})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in result.rows.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    if result.bad_rows:
        planted = sum(sum(c.values()) for c in result.bad_rows.values())
        console.print(f"Planted {planted} bad rows (see company.json).")
    console.print(f"Wrote the company to [bold]{result.out}[/]")


# --------------------------------------------------------------------------- validate


def print_report(report: ValidationReport) -> None:
    summary = Table(title=f"Validation ({report.mode})")
    for column in ("table", "rows in", "loaded", "quarantined", "note"):
        summary.add_column(column, justify="right" if column != "table" and column != "note"
                           else "left")
    for name, t in report.tables.items():
        note = "absent" if t.absent else (
            f"ignored columns: {', '.join(t.ignored_columns)}" if t.ignored_columns else "")
        summary.add_row(name, f"{t.rows_in:,}", f"{t.rows_loaded:,}", f"{t.rows_quarantined:,}",
                        note)
    console.print(summary)
    for name, means in report.absent_meaning.items():
        console.print(f"[yellow]Without {name}:[/] {means}.")
    if report.issues:
        issues = Table(title="Problems found")
        for column in ("table", "column", "rule", "rows", "what", "examples"):
            issues.add_column(column)
        for issue in report.issues:
            examples = "; ".join(json.dumps(e, default=str)[:120] for e in issue.examples[:2])
            issues.add_row(issue.table, issue.column, issue.rule, f"{issue.rows:,}",
                           issue.message, examples)
        console.print(issues)
    if report.warnings:
        warned = Table(title="Warnings (rows loaded)")
        for column in ("table", "column", "rows", "what", "examples"):
            warned.add_column(column)
        for warning in report.warnings:
            examples = "; ".join(json.dumps(e, default=str)[:120] for e in warning.examples[:2])
            warned.add_row(warning.table, warning.column, f"{warning.rows:,}", warning.message,
                           examples)
        console.print(warned)


def load_or_exit(settings: Settings, labels_churn: bool = False):  # type: ignore[no-untyped-def]
    """Load and validate history, turning every input problem into a clear message and exit.

    ``labels_churn``: the command labels churn, so the tables the configured churn definition
    reads are required too (validate, features); the others need accounts and usage events.
    """
    from churnlens.raw.history import load_history, report_path

    try:
        history = load_history(settings, labels_churn=labels_churn)
    except ValidationFailed as refused:
        print_report(refused.report)
        errors.print(f"[red]Strict mode refused the load:[/] {len(refused.report.issues)} "
                     f"problem(s). Report: {report_path(settings)}")
        raise typer.Exit(1) from None
    except (ContractError, SourceError, MappingError, EngineError) as error:
        raise refuse("load the history", error) from None
    return history


@app.command()
def validate(
    data: Annotated[str | None, typer.Option(help="Folder of Parquet/CSV files or a database "
                                             "URL Ibis can open \\[default: HOME/raw].")] = None,
    mapping: Annotated[Path | None, typer.Option(help="YAML mapping of foreign table and column "
                                                 "names (and units) onto the contract.")] = None,
    strict: Annotated[bool, typer.Option("--strict/--lenient", help="Strict refuses the load on "
                                         "any bad row; lenient quarantines them.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    churn_definition: Annotated[str | None, typer.Option(
        help="subscription (needs the subscriptions table) or inactivity (accounts and usage "
        "events are enough).")] = None,
) -> None:
    """Check the tables against the input contract.

    Accounts and usage events are required; subscriptions (unless the churn definition is
    subscription), tickets and surveys are optional, and the report says what each absent one
    means. Missing columns, wrong types, out-of-range values, resolved before created, end
    before start, overlapping subscriptions, unknown accounts, duplicate ids and future
    timestamps are each reported with the table, column, row count and examples. Lenient mode
    writes bad rows to HOME/quarantine/<table>.parquet and loads the rest.
    """
    from churnlens.raw.history import report_path

    settings = _settings(data=data, mapping=mapping, strict=strict,
                         churn_definition=churn_definition)
    with console.status("Validating the history in DuckDB..."):
        history = load_or_exit(settings, labels_churn=True)
    if as_json:
        sys.stdout.write(json.dumps(history.report.to_dict(), indent=2, default=str) + "\n")
        return
    print_report(history.report)
    quarantined = [t.quarantine_file for t in history.report.tables.values() if t.quarantine_file]
    if quarantined:
        console.print(f"Quarantined rows written to [bold]{settings.layout.quarantine}[/]")
    console.print(f"Report written to [bold]{report_path(settings)}[/]")


# --------------------------------------------------------------------------- features


def snapshot_spec(settings: Settings):  # type: ignore[no-untyped-def]
    from churnlens.features.snapshots import SnapshotSpec

    return SnapshotSpec(
        grid=settings.grid, horizon_days=settings.horizon_days,
        churn_definition=settings.churn_definition, inactivity_days=settings.inactivity_days,
        grace_days=settings.grace_days, expansion_min_share=settings.expansion_min_share,
        key_events=tuple(settings.key_events), feature_set=settings.feature_set,
        money_event=settings.money_event)


def print_feature_report(report: dict) -> None:  # type: ignore[type-arg]
    table = Table(title="Snapshots")
    for column in ("as_of", "accounts", "churned", "expanded", "labels", "built"):
        table.add_column(column, justify="right")
    for entry in report["dates"]:
        def rate(key: str, e: dict = entry) -> str:  # type: ignore[type-arg]
            value = e.get(key)
            return "-" if value is None else f"{value:.1%}"
        table.add_row(entry["as_of"], f"{entry['rows']:,}", rate("churned_rate"),
                      rate("expanded_rate"), "final" if entry["labelled"] else "open",
                      entry.get("built") or ("reused" if entry["reused"] else "computed"))
    console.print(table)
    rates = report["label_rates"]
    pillars = ", ".join(f"{k} {v}" for k, v in report["pillars"].items())
    console.print(
        f"{report['snapshots']:,} snapshots over {report['snapshot_dates']} dates from "
        f"{report['usage_events'] or 0:,} usage events, "
        f"{report['labelled_snapshots']:,} labelled; churn rate "
        f"{(rates['churned'] or 0):.1%}, expansion rate {(rates['expanded'] or 0):.1%}; "
        f"{report['features']} features ({pillars}).")
    if report["absent_features"]:
        console.print("[yellow]Absent features:[/] " + "; ".join(
            f"{name} ({why})" for name, why in report["absent_features"].items()))
    mostly_null = {k: v for k, v in report["null_rates"].items() if v > 0.5}
    if mostly_null:
        console.print("Mostly empty (over 50% null): " + ", ".join(
            f"{k} {v:.0%}" for k, v in sorted(mostly_null.items())))


@app.command()
def features(
    data: Annotated[str | None, typer.Option(help="Raw history folder or database URL "
                                             "\\[default: HOME/raw].")] = None,
    mapping: Annotated[Path | None, typer.Option(help="YAML mapping onto the contract.")] = None,
    strict: Annotated[bool, typer.Option("--strict/--lenient",
                                         help="Validation mode for the raw history.")] = False,
    backend: Annotated[str | None, typer.Option(
        help="Engine: duckdb, spark (settings spark_master, spark_conf) or postgres (with "
        "--data postgresql://...).")] = None,
    grid: Annotated[str | None, typer.Option(help="Snapshot calendar: monthly or weekly.")] =
        None,
    horizon_days: Annotated[int | None, typer.Option(help="Label window in days.")] = None,
    churn_definition: Annotated[str | None, typer.Option(
        help="subscription (a lapsed subscription) or inactivity (no usage for a while).")] =
        None,
    inactivity_days: Annotated[int | None, typer.Option(
        help="Days without usage that count as churn (inactivity mode).")] = None,
    money_event: Annotated[str | None, typer.Option(
        help="The usage event whose quantity is money (an order's value): spend features and "
        "the baselines' M.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Recompute every snapshot, not just new "
                                       "or still-open ones or those whose raw rows changed.")] =
        False,
    refresh_vocabulary: Annotated[bool, typer.Option(
        "--refresh-vocabulary", help="Choose the commonest event types (whose counts are "
        "features) again from the whole history; otherwise the store keeps the ones of its "
        "first build, so a model's columns never move under it. Retrain after.")] = False,
) -> None:
    """Build point-in-time snapshots and labels into HOME/features.

    One snapshot per account and grid date (the 1st of each month by default) for every
    account that is a customer at that date; features read only rows dated before it, labels
    (churned, expanded) only the horizon after it. Reruns compute only new dates, dates whose
    labels were still open and dates whose raw rows changed, unless --full.
    """
    from churnlens.features.pipeline import build_features, write_report

    settings = _settings(data=data, mapping=mapping, strict=strict, backend=backend, grid=grid,
                         horizon_days=horizon_days, churn_definition=churn_definition,
                         inactivity_days=inactivity_days, money_event=money_event)
    with console.status("Validating the history..."):
        history = load_or_exit(settings, labels_churn=True)
    spec = snapshot_spec(settings)
    root = settings.layout.features
    with console.status(f"Building snapshots on {history.backend.name}..."):
        try:
            run = build_features(history, spec, root, full=full,
                                 refresh_vocabulary=refresh_vocabulary)
        except ValueError as error:
            raise refuse("build features", error) from None
    report_file = write_report(run.report, settings.layout.reports / "features.json")
    print_feature_report(run.report)
    console.print(f"Snapshots written to [bold]{run.output}[/] "
                  f"({len(run.computed)} dates computed, {len(run.reused)} reused) "
                  f"on {history.backend.name}")
    if run.fingerprint_error:
        console.print(f"[yellow]Could not fingerprint the raw history on {history.backend.name}, "
                      f"so every date was rebuilt:[/] {escape(run.fingerprint_error)}")
    else:
        changed = [d.isoformat() for d in run.rebuilt_for_data]
        which = ", ".join(changed) if len(changed) <= 2 else f"{changed[0]} to {changed[-1]}"
        console.print(f"{len(changed)} finished dates rebuilt because raw rows they read changed"
                      + (f": {which}" if changed else ""))
    console.print(f"Report written to [bold]{report_file}[/]")


# --------------------------------------------------------------------------- training


def print_baselines(section: dict | None) -> None:  # type: ignore[type-arg]
    """The churn model beside the peers an analyst would try first, on the same snapshots."""
    from churnlens.training.baselines import warning

    if not section or not section["peers"]:
        return
    figures = ", ".join(
        f"{peer['name']} {peer['roc_auc']:.3f}" if peer["roc_auc"] is not None
        else f"{peer['name']} n/a (one class in validation)" for peer in section["peers"])
    console.print(f"churn peers (ROC AUC, same validation snapshots): {figures}")
    alarm = warning(section)
    if alarm:
        console.print(f"[yellow]warning: {alarm}[/]")


METRIC_LABELS = {"roc_auc": "AUC", "pr_auc": "PR AUC", "brier": "Brier", "ece": "ECE",
                 "top_decile_lift": "top-10% lift", "top_decile_recall": "top-10% recall"}


def _figure(value: object, spec: str) -> str:
    """A report figure, or "n/a" where it could not be computed (the report says why)."""
    if not isinstance(value, int | float) or value != value:
        return "n/a"
    return format(value, spec)


def print_whole(table: Table) -> None:
    """Print ``table`` with every cell whole: at the terminal's width when it fits, at the
    width it needs otherwise (a terminal then wraps the long lines, a log keeps them), never
    cut short with "…" as rich does to fit 80 columns."""
    needed = Measurement.get(console, console.options.update(max_width=10_000), table).maximum
    if needed <= console.width:
        console.print(table)
        return
    width = console.width
    console.width = needed
    try:
        console.print(table)
    finally:
        console.width = width


def print_train_report(report: dict) -> None:  # type: ignore[type-arg]
    if "split_sizes" in report:
        console.print(f"Slices: {report['split_sizes']['summary']}")
    table = Table(title=f"Validation ({', '.join(report['split']['validation'])})")
    for column in ("target", "model", "ROC AUC (95% CI)", "PR AUC", "Brier", "ECE",
                   "top-10% lift"):
        table.add_column(column, justify="left" if column in ("target", "model") else "right")

    def row(target: str, name: str, m: dict) -> None:  # type: ignore[type-arg]
        auc = _figure(m.get("roc_auc"), ".3f")
        if m.get("roc_auc_low") is not None and m.get("roc_auc_high") is not None:
            auc += f" ({m['roc_auc_low']:.3f}-{m['roc_auc_high']:.3f})"
        lift = m.get("top_decile_lift")
        table.add_row(target, name, auc, _figure(m.get("pr_auc"), ".3f"),
                      _figure(m.get("brier"), ".4f"), _figure(m.get("ece"), ".4f"),
                      "" if name == "oracle" else _figure(lift, ".2f"))

    targets = [t for t in ("churn", "expansion") if t in report]
    absent = report.get("absent_models") or {}
    for target in targets:
        figures = report[target]
        row(target, f"LightGBM+{figures['calibrator']}", figures["validation"])
        row(target, "logistic", figures["baseline"])
        oracle = figures.get("oracle")
        if oracle:
            row(target, "oracle", oracle)
    for target in absent:
        table.add_row(target, "absent", "", "", "", "", "")
    print_whole(table)
    for target in targets:
        for metric, why in (report[target]["validation"].get("not_computable") or {}).items():
            console.print(f"[yellow]{target} {METRIC_LABELS.get(metric, metric)}: n/a, {why}[/]")
    for why in absent.values():
        console.print(f"[yellow]{why}; the churn model was trained alone[/]")
    for target in targets:
        oracle = report[target].get("oracle")
        if oracle and oracle.get("auc_ratio") is not None:
            console.print(f"{target}: model AUC is {oracle['auc_ratio']:.3f} x the oracle's "
                          "(the simulation's true probabilities)")
    print_baselines(report.get("baselines"))
    hazard = report.get("hazard") or {}
    if "validation" in hazard:
        ours, base = hazard["validation"], hazard["baselines"]
        console.print(f"churn month (hazard): C-td {_figure(ours['c_td'], '.3f')}, integrated "
                      f"Brier {_figure(ours['ibs'], '.4f')} (Kaplan-Meier "
                      f"{_figure(base['kaplan_meier']['ibs'], '.4f')}, churn model spread "
                      f"{_figure(base['churn_model_spread']['ibs'], '.4f')})")
        if "served" in hazard:
            served = hazard["served"]
            console.print(f"  as served (scaled to the churn probability): C-td "
                          f"{_figure(served['c_td'], '.3f')}, integrated Brier "
                          f"{_figure(served['ibs'], '.4f')}")
    print_outlook(report)
    cold = report.get("cold_start") or {}
    if "validation" in cold:
        figures = cold["validation"]
        ours, full = figures["cold_start"], figures["full_model"]
        console.print(f"new accounts (cold start, {len(cold['features'])} onboarding features): "
                      f"AUC {_figure(ours['roc_auc'], '.3f')}, Brier "
                      f"{_figure(ours['brier'], '.4f')} on {figures['rows']:,} new-account "
                      f"snapshots (full model {_figure(full['roc_auc'], '.3f')}, "
                      f"{_figure(full['brier'], '.4f')}): "
                      f"{'used' if cold['chosen'] else 'not used'}, {cold['reason']}")
    elif "skipped" in cold:
        console.print(f"[yellow]no cold-start model: {cold['skipped']}[/]")
    for flag in (report.get("segments") or {}).get("flags", []):
        console.print(f"[yellow]{flag}[/]")
    colour = "green" if report["promoted"] else "yellow"
    console.print(f"[{colour}]{report['reason']}[/]")


def print_outlook(report: dict) -> None:  # type: ignore[type-arg]
    """Renewal risk beside the horizon probability, and the 12-month revenue backtest."""
    renewal = report.get("renewal") or {}
    band = renewal.get("renewal_91_365")
    if band:
        horizon = report.get("horizon_days", 90)
        ours, theirs = band["renewal_risk"], band[f"churn_{horizon}d"]
        console.print(f"lost at the next renewal, renewals 91-365 days away ({band['snapshots']:,}"
                      f" snapshots, {band['lost']} lost, out of time): ROC AUC renewal risk "
                      f"{_figure(ours['roc_auc'], '.3f')} vs {horizon}-day probability "
                      f"{_figure(theirs['roc_auc'], '.3f')}; ECE {_figure(ours['ece'], '.3f')} "
                      f"vs {_figure(theirs['ece'], '.3f')}")
        every = renewal.get("renewal_all_known") or {}
        if every:
            console.print(f"  every renewal up to a year away ({every['snapshots']:,} snapshots):"
                          f" ROC AUC {_figure(every['renewal_risk']['roc_auc'], '.3f')} vs "
                          f"{_figure(every[f'churn_{horizon}d']['roc_auc'], '.3f')}")
    elif "skipped" in renewal:
        console.print(f"[yellow]{renewal['skipped']}[/]")
    backtest = (report.get("lifetime_value") or {}).get("backtest")
    if backtest:
        console.print(f"12-month revenue, out of time ({backtest['accounts']:,} accounts): "
                      f"predicted {backtest['predicted_total']:,.0f} vs paid "
                      f"{backtest['realised_total']:,.0f} "
                      f"({100 * backtest['total_error_share']:+.1f}%), per account RMSE "
                      f"{backtest['per_account_rmse']:,.0f}, WAPE "
                      f"{100 * backtest['per_account_wape']:.1f}% (MRR x 12: "
                      f"{100 * backtest['naive']['total_error_share']:+.1f}%, "
                      f"{backtest['naive']['per_account_rmse']:,.0f}, "
                      f"{100 * backtest['naive']['per_account_wape']:.1f}%)")


@app.command()
def train(
    horizon_days: Annotated[int | None, typer.Option(help="Label window the snapshots were "
                                                     "built with \\[default: 90].")] = None,
    fit_months: Annotated[int | None, typer.Option(
        min=1, help="Snapshot dates to fit on, just before tuning; older ones are left out "
        "\\[default: every date the other slices leave].")] = None,
    tuning_months: Annotated[int | None, typer.Option(
        min=1, help="Snapshot dates after fit that choose the trees and leaves "
        "\\[default: 1-3, chosen from the history].")] = None,
    calibration_months: Annotated[int | None, typer.Option(
        min=1, help="Snapshot dates after tuning that fit the calibrator "
        "\\[default: 1-3, chosen from the history].")] = None,
    validation_months: Annotated[int | None, typer.Option(
        min=1, help="Latest labelled snapshot dates held out for validation "
        "\\[default: 1-3, chosen from the history].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for fitting and bootstrap.")] = None,
    mlflow_tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow store \\[default: sqlite under HOME].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Train calibrated churn and expansion models on the snapshots in HOME/features.

    Validation is out of time (the latest snapshots whose horizon has elapsed); the slices
    fit | tuning | calibration | validation are chosen from the labelled dates (at least 6)
    unless given, and printed. The run is
    logged to MLflow with a logistic-regression baseline, registered, and becomes champion
    only if it is not worse than the current one on the same validation snapshots.
    """
    from churnlens.progress import Stages
    from churnlens.training.splits import NotEnoughHistory
    from churnlens.training.train import train as run_training

    settings = _settings(horizon_days=horizon_days, fit_months=fit_months,
                         tuning_months=tuning_months, calibration_months=calibration_months,
                         validation_months=validation_months, seed=seed,
                         mlflow_tracking_uri=mlflow_tracking_uri)
    try:
        if as_json:
            result = run_training(settings)
        else:
            with Stages(console, "Training") as stages:
                result = run_training(settings, progress=stages)
    except (FileNotFoundError, NotEnoughHistory, ValueError) as error:
        raise refuse("train", error) from None
    if as_json:
        sys.stdout.write(json.dumps(result.report, indent=2, default=str) + "\n")
        return
    print_train_report(result.report)
    console.print(f"MLflow run [bold]{result.run_id}[/] in "
                  f"[bold]{result.report.get('tracking_uri', settings.layout.mlflow_db)}[/]")
    console.print(f"Report written to [bold]{result.report_path}[/]")
    if result.bundle:
        console.print(f"Champion bundle exported to [bold]{result.bundle}[/]")


@app.command()
def promote(
    run_id: Annotated[str, typer.Argument(help="MLflow run id whose models become champion.")],
) -> None:
    """Make a run's models champion by hand (recorded on the run as a manual promotion)."""
    from churnlens.training.train import promote as run_promote

    settings = _settings()
    try:
        result = run_promote(settings, run_id)
    except LookupError as error:
        raise refuse("promote", error) from None
    console.print(f"Run [bold]{run_id}[/] is champion ({result['reason']}); bundle exported to "
                  f"[bold]{result['bundle']}[/]")


@app.command()
def score(
    as_json: Annotated[bool, typer.Option("--json", help="Print the riskiest accounts as "
                                          "JSON.")] = False,
    top: Annotated[int, typer.Option(min=0, help="How many of the riskiest accounts to "
                                     "print.")] = 10,
    explained: Annotated[bool, typer.Option(
        "--explain/--no-explain", help="Explain each score (drivers, failing pillar, playbook); "
        "--no-explain writes probabilities, tier, health and segment only, far faster.")] = True,
    champion_source: Annotated[str | None, typer.Option(
        help="Champion from HOME/models ('models') or MLflow's champion alias ('mlflow').")
    ] = None,
    backend: Annotated[str | None, typer.Option(
        help="Where to score: in this process (duckdb, the default) or on Spark executors "
        "(spark; settings spark_master, spark_conf).")] = None,
    alerts: Annotated[bool, typer.Option(
        "--alerts/--no-alerts", help="Run the alert rules on the new table (tasks and "
        "queued webhooks; see `churnlens alerts`).")] = True,
    alerts_file: Annotated[Path | None, typer.Option(
        "--alerts-file", help="Alert rules merged over the shipped ones (setting "
        "alerts).")] = None,
) -> None:
    """Score every active account at the latest snapshot with the champion, explained.

    Writes HOME/scores/<as_of>.parquet and .csv (the table a CS platform imports): churn and
    expansion probability, tier, health score, segment, the top drivers as sentences, the
    failing pillar, the playbook and why, the model version and the as_of of the features.
    Chunks of accounts are explained in parallel on every core (--threads caps it).
    """
    from churnlens.serving.playbooks import PlaybookError
    from churnlens.serving.score import riskiest
    from churnlens.serving.score import score as run_score
    from churnlens.training.bundle import BundleError

    settings = _settings(champion_source=champion_source, backend=backend)
    try:
        if settings.backend == "spark":
            from churnlens.serving.spark_score import score_on_spark

            with console.status(f"Scoring on Spark ({settings.spark_master})..."):
                run = score_on_spark(settings, explained=explained)
        else:
            with console.status("Scoring..."):
                run = run_score(settings, explained=explained)
    except (BundleError, FileNotFoundError, PlaybookError, EngineError) as error:
        raise refuse("score", error) from None
    rows = riskiest(run.table, top)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    table = Table(title=f"Riskiest accounts at {run.as_of} (model {run.model_version})")
    for column in ("account", "risk", "churn", "tier", "health", "segment", "playbook",
                   "top driver"):
        table.add_column(column, justify="right" if column in ("risk", "churn", "health")
                         else "left")
    for row in rows:  # riskiest first by risk: until the renewal, or the horizon's
        table.add_row(row["account_id"], f"{row.get('risk', row['churn_probability']):.0%}",
                      f"{row['churn_probability']:.0%}", row["tier"],
                      str(row["health_score"]), row["segment"], row.get("playbook") or "",
                      row.get("driver_1_sentence") or "")
    console.print(table)
    console.print(f"{len(run.table):,} accounts scored in {run.seconds:.1f}s; score table "
                  f"written to [bold]{run.parquet}[/] and [bold]{run.csv}[/]")
    if alerts:
        _run_alerts(settings, alerts_file, run.table, run.as_of)


@app.command()
def forecast(
    quarters: Annotated[int, typer.Option(min=1, help="Past quarter starts to backtest (the "
                                          "latest labelled snapshot dates).")] = 12,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Next quarter's gross and net revenue retention, with an interval, and its backtest.

    The forecast sums, over the accounts of the latest snapshot, what churn and expansion
    are expected to do to their ARR (the champion's calibrated probabilities, and what each
    outcome did to ARR in history). The backtest refits the champion's model shape at past
    quarter starts on what was known then and compares each forecast with the ARR the accounts
    held a quarter later: its error and how often the interval held the truth. Written to
    HOME/reports/forecast.json.
    """
    from churnlens.serving.forecasting import NoRevenue, report_path, run_forecast
    from churnlens.training.bundle import BundleError

    settings = _settings()
    try:
        with console.status("Backtesting the revenue forecast on past quarters..."):
            report = run_forecast(settings, quarters)
    except (BundleError, FileNotFoundError, NoRevenue) as error:
        raise refuse("forecast", error) from None
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
        return
    ahead = Table(title=f"Next {report['backtest']['horizon_days']} days from {report['as_of']} "
                  f"(model {report['model_version']}, "
                  f"{report['backtest']['level']:.0%} intervals)")
    for column in ("accounts", "ARR", "ARR at risk", "expected expansion", "GRR", "NRR"):
        ahead.add_column(column, justify="right")
    ahead.add_column("group", justify="left")
    for group, revenue in report["forecast"].items():
        if not revenue or not revenue.get("forecast"):
            continue
        guess = revenue["forecast"]
        ahead.add_row(f"{revenue['accounts']:,}", f"{revenue['arr']:,.0f}",
                      f"{revenue['arr_at_risk']:,.0f}",
                      f"{revenue['expected_expansion_arr']:,.0f}",
                      *[f"{guess[m]['expected']:.1%} ({guess[m]['low']:.1%}-"
                        f"{guess[m]['high']:.1%})" for m in ("grr", "nrr")], group)
    console.print(ahead)
    if report["backtest"].get("too_short"):
        console.print(f"[yellow]{report['backtest']['too_short']}[/]")
        return
    past = Table(title="Backtest: the whole portfolio at past quarter starts")
    for column in ("start", "GRR forecast", "GRR actual", "NRR forecast", "NRR actual"):
        past.add_column(column, justify="right")
    checks = [c for c in report["backtest"]["checks"] if c["group"] == "portfolio"]
    for start in sorted({c["start"] for c in checks}):
        cells = []
        for measure in ("grr", "nrr"):
            c = next(c for c in checks if c["start"] == start and c["measure"] == measure)
            mark = "" if c["covered"] else " [red]outside[/]"
            cells += [f"{c['expected']:.1%} ({c['low']:.1%}-{c['high']:.1%})",
                      f"{c['actual']:.1%}{mark}"]
        past.add_row(start, *cells)
    console.print(past)
    for name, s in report["backtest"]["summary"].items():
        measure, scope = name.split("_", 1)
        console.print(f"{measure.upper()} ({scope}): mean absolute error "
                      f"{100 * s['mean_absolute_error']:.1f} points, bias "
                      f"{100 * s['bias']:+.1f}, {s['coverage']:.0%} of {s['quarters']} "
                      f"inside the {report['backtest']['level']:.0%} interval "
                      f"(mean width {100 * s['mean_width']:.1f} points)")
    console.print(f"Report written to [bold]{report_path(settings)}[/]")


# --------------------------------------------------------------------------- alerts

alerts_app = typer.Typer(
    help="Alert rules and the CSM task queue: run the rules on the latest score table, list "
    "them, send the queued webhooks.", invoke_without_command=True)
app.add_typer(alerts_app, name="alerts")

AlertsFileOption = Annotated[Path | None, typer.Option(
    "--alerts", help="Alert rules and endpoints merged over the shipped rules (setting "
    "alerts).")]
TasksDbOption = Annotated[str | None, typer.Option(
    "--tasks-db", help="Task store URL (postgresql://user:password@host/db); default SQLite "
    "at HOME/tasks.db (setting tasks_db).")]


@alerts_app.callback()
def alerts_run(
    ctx: typer.Context,
    rules_file: AlertsFileOption = None,
    tasks_db: TasksDbOption = None,
    list_rules: Annotated[bool, typer.Option(
        "--list", help="List the rules, their state (on, off, skipped and why) and open "
        "tasks; run nothing.")] = False,
) -> None:
    """Run the alert rules on the latest score table: a task per firing, webhooks queued.

    `churnlens score` runs them by itself; this runs them again on demand (a rerun on the
    same table creates nothing). `churnlens alerts deliver` sends the queued webhooks.
    """
    ctx.obj = {"rules_file": rules_file, "tasks_db": tasks_db}
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(tasks_db=tasks_db)
    if list_rules:
        _list_rules(settings, rules_file)
        return
    _run_alerts(settings, rules_file)


def _run_alerts(settings: Settings, rules_file: Path | None, table: Any = None,
                as_of: date | None = None) -> None:
    from churnlens.alerts import AlertsError
    from churnlens.alerts.evaluate import run_alerts

    try:
        evaluation = run_alerts(settings, table, as_of, rules_file)
    except AlertsError as error:
        raise refuse("run the alert rules", error) from None
    for rule, why in evaluation.plan.skipped.items():
        errors.print(f"[yellow]Alert rule {rule} skipped:[/] {escape(why)}")
    done = evaluation.recorded
    held = f", {done.held_out} held out as controls" if done.held_out else ""
    console.print(f"Alerts on the {evaluation.as_of} scores: {len(done.tasks)} new tasks{held}, "
                  f"{done.deliveries} webhooks queued ({done.open_task} firings had an open "
                  f"task, {done.cooling_down} were cooling down, {done.already_fired} were "
                  "already recorded)." + (" `churnlens alerts deliver` sends the webhooks."
                                          if done.deliveries else ""))


def _list_rules(settings: Settings, rules_file: Path | None) -> None:
    from churnlens.alerts import AlertsError
    from churnlens.alerts.evaluate import (
        account_facts,
        inputs_of,
        latest_table,
        rules_for,
        store_for,
        tier_thresholds,
    )

    try:
        book = rules_for(settings, rules_file)
        try:
            table, as_of = latest_table(settings)
        except AlertsError:
            plan, seen = None, "no score table yet: which rules the data allows is not known"
        else:
            facts = account_facts(settings, table, as_of)
            versions = sorted({str(v) for v in facts.get("model_version", [])})
            thresholds = tier_thresholds(settings, versions[0]) if len(versions) == 1 else None
            plan, seen = book.plan(inputs_of(facts, thresholds)), f"the {as_of} scores"
        with store_for(settings) as store:
            counts = store.open_counts()
    except AlertsError as error:
        raise refuse("list the alert rules", error) from None
    table_out = Table(title=f"Alert rules (data: {seen})")
    for column in ("rule", "state", "when", "playbook", "priority", "due", "cooldown",
                   "holdout", "open tasks"):
        table_out.add_column(column)
    for rule in book.rules:
        state = ("off" if not rule.enabled else
                 f"skipped: {plan.skipped[rule.name]}" if plan and rule.name in plan.skipped
                 else "on")
        when = ", ".join(f"{k}={v}" for k, v in rule.when.conditions().items())
        table_out.add_row(rule.name, state, escape(when), rule.playbook or "(the account's)",
                          rule.priority, f"{rule.due_days}d", f"{rule.cooldown_days}d",
                          f"{rule.holdout:.0%}", str(counts.get(rule.name, 0)))
    console.print(table_out)
    if book.endpoints:
        ends = Table(title="Webhook endpoints")
        for column in ("endpoint", "url", "format", "rules", "priorities"):
            ends.add_column(column)
        for endpoint in book.endpoints:
            ends.add_row(endpoint.name, endpoint.where, endpoint.format,
                         ", ".join(endpoint.rules or ["all"]),
                         ", ".join(endpoint.priorities or ["all"]))
        console.print(ends)
    else:
        console.print("No webhook endpoints: tasks are kept in the store only.")


@alerts_app.command("deliver")
def alerts_deliver(
    ctx: typer.Context,
    wait: Annotated[bool, typer.Option(
        "--wait/--no-wait", help="Keep retrying failed sends on their backoff until each is "
        "sent or dead (default), or make one pass and leave retries to the next run (cron)."
    )] = True,
) -> None:
    """Send the queued webhooks (Standard Webhooks signed), retrying with backoff.

    A webhook is marked sent only on the receiver's 2xx answer; one that fails every attempt
    (setting delivery_attempts) is marked dead with the last error. A sender stopped midway
    loses nothing: the next run sends what is left, under the same webhook-id.
    """
    from churnlens.alerts import AlertsError
    from churnlens.alerts.delivery import Schedule, deliver
    from churnlens.alerts.evaluate import rules_for, store_for

    options = ctx.obj or {}
    settings = _settings(tasks_db=options.get("tasks_db"))
    schedule = Schedule(attempts=settings.delivery_attempts,
                        max_delay_seconds=settings.delivery_max_delay_seconds,
                        timeout_seconds=settings.delivery_timeout_seconds)
    try:
        book = rules_for(settings, options.get("rules_file"))
        with store_for(settings) as store, console.status("Sending webhooks..."):
            run = deliver(store, book, schedule, wait=wait)
    except AlertsError as error:
        raise refuse("deliver the webhooks", error) from None
    console.print(f"Webhooks: {run.sent} sent, {run.failed} failed and queued for a retry, "
                  f"{run.dead} dead.")
    for line in run.errors[-5:]:
        errors.print(f"[yellow]{escape(line)}[/]")
    if run.dead:
        raise typer.Exit(1)


keys_app = typer.Typer(help="API keys for the risk API: create, list, revoke.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _key_store():  # type: ignore[no-untyped-def]
    from churnlens.serving.keys import KeyStore

    return KeyStore(_settings().layout.root / "api_keys.json")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what uses the key.")],
    scope: Annotated[str, typer.Option(help="read (risk and portfolio), whatif (also live "
                                       "what-if) or admin (also reload).")] = "read",
) -> None:
    """Create a key. It is printed alone on the last line and never shown again."""
    try:
        record, key = _key_store().create(name, scope)  # type: ignore[arg-type]
    except ValueError as error:
        raise refuse("create the key", error) from None
    console.print(f"Created key [bold]{record.id}[/] ({record.name}, scope {record.scope}). "
                  "Store it now: only its hash is kept.")
    sys.stdout.write(key + "\n")


@keys_app.command("list")
def keys_list() -> None:
    """Every key's id, name, scope and dates (never the key itself)."""
    table = Table(title="API keys")
    for column in ("id", "name", "scope", "created", "revoked"):
        table.add_column(column)
    for record in _key_store().records():
        table.add_row(record.id, record.name, record.scope, record.created_at,
                      record.revoked_at or "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The id `keys list` shows.")]
                ) -> None:
    """Revoke a key; the server refuses it from the next request on."""
    try:
        record = _key_store().revoke(key_id)
    except LookupError as error:
        raise refuse("revoke", error) from None
    console.print(f"Revoked key {record.id} ({record.name}).")


@app.command("serve")
def serve_api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    champion_source: Annotated[str | None, typer.Option(
        help="Champion from HOME/models ('models') or MLflow's champion alias ('mlflow').")
    ] = None,
) -> None:
    """Serve the risk API (OpenAPI at /docs) with uvicorn.

    Answers come from the champion bundle and the latest snapshot; callers authenticate with
    keys from `churnlens keys create`.
    """
    import os

    import uvicorn

    from churnlens.serving.playbooks import PlaybookError, load_playbooks
    from churnlens.serving.score import champion
    from churnlens.training.bundle import BundleError

    settings = _settings(champion_source=champion_source)
    try:  # refuse to start on what would only fail inside the workers
        load_playbooks(settings.playbooks)
    except PlaybookError as error:
        raise refuse("serve", error) from None
    try:
        champion(settings)
    except BundleError as error:  # start anyway: the pages say what to do, and the server
        console.print(f"[yellow]Nothing to serve yet:[/] {error}. The server starts and "
                      "picks up the model once one is trained.")
    if not _key_store().records():
        console.print("[yellow]No API keys yet:[/] create one with `churnlens keys create "
                      "--name me`.")
    os.environ["CHURNLENS_HOME"] = str(settings.home.resolve())
    os.environ["CHURNLENS_CHAMPION_SOURCE"] = settings.champion_source
    console.print(f"Serving on http://{host}:{port} (docs at /docs)")
    # a worker explaining the score table in the background can be slow to answer uvicorn's
    # 5-second health check, and a missed check silently replaces the worker
    uvicorn.run("churnlens.serving.main:app", host=host, port=port, workers=workers,
                factory=True, log_level="warning", timeout_worker_healthcheck=60)


# --------------------------------------------------------------------------- kpis

KPI_COLUMNS = (("active", "active_accounts", "{:,.0f}"),
               ("logo churn", "logo_churn_rate", "{:.1%}"),
               ("GRR", "grr", "{:.1%}"), ("NRR", "nrr", "{:.1%}"),
               ("expansion", "expansion_mrr", "{:,.0f}"),
               ("contraction", "contraction_mrr", "{:,.0f}"), ("NPS", "nps", "{:+.0f}"),
               ("CSAT", "csat", "{:.2f}"), ("TTFV days", "median_ttfv_days", "{:.1f}"),
               ("DAU/MAU", "dau_mau", "{:.1%}"), ("adoption", "feature_adoption_rate", "{:.0%}"))


@app.command()
def kpis(
    since: Annotated[str | None, typer.Option("--from", help="First month, YYYY-MM.")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Last month, YYYY-MM.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the KPIs as JSON.")] = False,
) -> None:
    """Portfolio KPIs by month from the raw history: logo churn, GRR, NRR, expansion and
    contraction MRR, NPS, CSAT, time to first value, DAU/MAU, feature adoption, and accounts
    by health tier (from the score tables). Definitions: README, "Portfolio KPIs"."""
    from churnlens.features.kpis import compute_report, health_tiers, month_arg

    try:
        first, last = month_arg(since), month_arg(until)
    except ValueError as error:
        raise refuse("read the months", error) from None
    settings = _settings()
    history = load_or_exit(settings)
    with console.status("Computing the KPIs..."):
        report = compute_report(settings, history, first, last)
    tiers = health_tiers(settings.layout.scores)
    for month in report["months"]:
        month["health_tiers"] = tiers.get(month["month"])
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    table = Table(title="Portfolio KPIs by month")
    table.add_column("month")
    for title, _, _ in KPI_COLUMNS:
        table.add_column(title, justify="right")
    table.add_column("tiers high/medium/low", justify="right")
    for month in report["months"]:
        cells = ["-" if month.get(key) is None else style.format(month[key])
                 for _, key, style in KPI_COLUMNS]
        held = month["health_tiers"]
        table.add_row(month["month"][:7], *cells,
                      "-" if not held else f"{held['high']}/{held['medium']}/{held['low']}")
    console.print(table)
    needs: dict[str, list[str]] = {}
    for title, key, _ in KPI_COLUMNS:
        if key in report["absent"]:
            needs.setdefault(report["absent"][key], []).append(title)
    for why, titles in needs.items():
        console.print(f"[yellow]Absent:[/] {', '.join(titles)} ({why}).")


# --------------------------------------------------------------------------- demo


@app.command()
def demo(
    accounts: Annotated[int, typer.Option(min=50, help="Accounts in the demo company.")] = 5000,
    months: Annotated[int, typer.Option(min=16, help="Months of history.")] = 36,
    seed: Annotated[int, typer.Option()] = 7,
    serve: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the API at the end "
                                        "(Ctrl-C stops it).")] = True,
    port: Annotated[int, typer.Option(help="Port for the API.")] = 8000,
) -> None:
    """The main job on embedded defaults: generate, validate, build, train, score, serve.

    Generates a demo company into HOME/raw, validates it, builds its snapshots, trains and
    promotes the models, scores every account, prints the riskiest, and starts the API with a
    demo key (--no-serve to stop before).
    """
    settings = _settings()
    console.rule("[bold]1. Generate a demo company")
    synth(accounts=accounts, months=months, seed=seed, start="2023-01-01", dirty=False,
          rollouts=32, out=None)
    console.rule("[bold]2. Validate the history")
    validate(data=None, mapping=None, strict=False, as_json=False, churn_definition=None)
    console.rule("[bold]3. Build point-in-time features and labels")
    features(data=None, mapping=None, strict=False, backend=None, grid=None, horizon_days=None,
             churn_definition=None, inactivity_days=None, money_event=None, full=False,
             refresh_vocabulary=False)
    console.rule("[bold]4. Train, evaluate and promote")
    train(horizon_days=None, fit_months=None, tuning_months=None, calibration_months=None,
          validation_months=None, seed=None, mlflow_tracking_uri=None, as_json=False)
    console.rule("[bold]5. Score every active account")
    score(as_json=False, top=10, explained=True, champion_source=None, backend=None,
          alerts=True, alerts_file=None)
    console.rule("[bold]Done")
    console.print(
        f"A generated company in [bold]{settings.layout.raw}[/], validated; its snapshots in "
        f"[bold]{settings.layout.features}[/]; a calibrated champion in "
        f"[bold]{settings.layout.models}[/] (runs in MLflow: `uv run mlflow ui "
        f"--backend-store-uri sqlite:///{settings.layout.mlflow_db}`); the score table in "
        f"[bold]{settings.layout.scores}[/].")
    if not serve:
        console.print("--no-serve: not starting the API (`churnlens serve` starts it).")
        return
    console.rule("[bold]6. Serve the risk API")
    record, key = _key_store().create("demo", "admin")
    console.print(f"Demo API key (scope admin, id {record.id}): [bold]{key}[/]\n"
                  f"Try: curl -H 'Authorization: Bearer {key}' "
                  f"http://127.0.0.1:{port}/v1/accounts?limit=3")
    serve_api(host="127.0.0.1", port=port, workers=1, champion_source=None)


if __name__ == "__main__":  # pragma: no cover
    app()
