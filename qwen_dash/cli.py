"""The command line: ``python -m qwen_dash compare|suite|export|votes|leaderboard|bench ...``."""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from sqlalchemy.exc import SQLAlchemyError

from qwen_dash.core.defaults import SOURCES, default_source
from qwen_dash.core.metrics import MEASURED, GenerationResult
from qwen_dash.core.request import (
    CompareRequest,
    RequestError,
    recommended_settings,
    validate_request,
)
from qwen_dash.core.specs import SpecError, default_model_keys, load_specs
from qwen_dash.core.speed import PROTOCOLS
from qwen_dash.quality.battles import Battle, BattleFormatError, dump_battles, parse_battles
from qwen_dash.quality.suites import SuiteError, load_suite
from qwen_dash.store import (
    EXPORT_FORMATS,
    RunFilters,
    Store,
    StoreError,
    VoteFilters,
    open_store,
)
from qwen_dash.views.display import fmt_metric, twin_warning
from qwen_dash.views.safe_text import clean_search


def _source_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source",
        choices=SOURCES,
        default=default_source(),
        help="where weights come from (default: $QWEN_DASH_SOURCE or auto)",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m qwen_dash", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compare", help="one prompt to every model, answers side by side")
    c.add_argument("prompt")
    _source_arg(c)
    c.add_argument("--models", help="comma-separated model keys (default: the two Qwen models)")
    c.add_argument("--mode", choices=("concurrent", "isolated"), default="concurrent")
    c.add_argument("--thinking", choices=("on", "off"), default="off")
    c.add_argument("--max-new-tokens", type=int, default=256)
    c.add_argument("--system", default=None, help="system prompt")
    c.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--json", action="store_true", help="one JSON object per model")
    c.add_argument("--no-log", action="store_true", help="do not log the run to the database")

    su = sub.add_parser("suite", help="prompt suites: many prompts, assertions, pass rates")
    susub = su.add_subparsers(dest="suite_command", required=True)
    r = susub.add_parser(
        "run",
        help="run a suite file on every model; exit 0 all passed, 1 some failed, 2 invalid",
    )
    r.add_argument("file", help="suite YAML (promptfoo's shape; see suites/)")
    r.add_argument("--models", help="comma-separated model keys (default: the suite's models)")
    _source_arg(r)
    r.add_argument("--repeat", type=int, default=None, help="run each case N times")
    r.add_argument("--json", action="store_true", help="JSON Lines: each case x model, summary")
    r.add_argument("--junit", metavar="FILE", help="write JUnit XML here (one testcase each)")

    b = sub.add_parser("bench", help="benchmarks that print figures")
    bsub = b.add_subparsers(dest="bench", required=True)
    o = bsub.add_parser("overhead", help="engine decode tok/s against bare generate")
    _source_arg(o)
    o.add_argument("--models", default=None)
    o.add_argument("--tokens", type=int, default=64)
    o.add_argument("--rounds", type=int, default=5)
    o.add_argument("--json", action="store_true")
    s = bsub.add_parser("startup", help="worker start time and memory beyond the weights")
    _source_arg(s)
    s.add_argument("--models", default=None)
    s.add_argument("--json", action="store_true")
    sp = bsub.add_parser("speed", help="both models under Qwen's speed protocol, one at a time")
    _source_arg(sp)
    sp.add_argument("--models", default=None)
    sp.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        default=None,
        help="qwen: inputs 1,6144,14336,30720, 2048 new tokens; quick: inputs 1,512,2048, 128 "
        "new tokens (default: qwen on a GPU, quick on a CPU)",
    )
    sp.add_argument("--inputs", type=_lengths, default=None, help="input lengths, e.g. 1,512")
    sp.add_argument("--output", type=int, default=None, help="new tokens per case (forced)")
    sp.add_argument("--fresh", action="store_true", help="a fresh worker per case, no warm-up")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--no-log", action="store_true", help="do not log the cases to the database")
    bsub.add_parser("store", help="database speed on N synthetic runs", add_help=False)
    bsub.add_parser("pages", help="each page's time in Chromium on N runs", add_help=False)
    bs = bsub.add_parser("suite", help="suite runner overhead per case; results page build time")
    _source_arg(bs)
    bs.add_argument("--cases", type=int, default=200)
    bs.add_argument("--page-cases", type=int, default=500)
    bs.add_argument("--json", action="store_true")
    bsub.add_parser(
        "remote", help="a remote server: client overhead, concurrent comparisons", add_help=False
    )
    e = sub.add_parser("export", help="write logged runs as CSV or JSON Lines")
    e.add_argument("--format", choices=EXPORT_FORMATS, default="jsonl")
    e.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    e.add_argument("--text", help="runs whose prompt or outputs contain this text")
    e.add_argument("--model", action="append", default=[], help="model key (repeatable)")
    e.add_argument("--source", action="append", default=[], choices=[*SOURCES[1:], "remote"])
    e.add_argument("--since", help="ISO date or time, inclusive (UTC unless it says)")
    e.add_argument("--until", help="ISO date or time, exclusive")
    e.add_argument("--tag")
    e.add_argument("--thinking", choices=("on", "off"))
    e.add_argument("--mode", choices=("concurrent", "isolated"))
    _arena_parsers(sub, bsub)
    return p


def _run_filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", default=[], help="model key (repeatable)")
    p.add_argument("--source", action="append", default=[], choices=SOURCES[1:])
    p.add_argument("--since", help="ISO date or time, inclusive (UTC unless it says)")
    p.add_argument("--until", help="ISO date or time, exclusive")
    p.add_argument("--tag")
    p.add_argument("--thinking", choices=("on", "off"))
    p.add_argument("--mode", choices=("concurrent", "isolated"))


def _arena_parsers(sub: Any, bsub: Any) -> None:
    v = sub.add_parser("votes", help="export or import arena votes (FastChat clean battles)")
    vsub = v.add_subparsers(dest="votes", required=True)
    ve = vsub.add_parser("export", help="every battle as FastChat clean-battle records")
    ve.add_argument("--format", choices=("jsonl", "json"), default="jsonl")
    ve.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")
    vi = vsub.add_parser("import", help="add battles from a JSON list or JSON Lines file")
    vi.add_argument("file", help="the file to read ('-' for stdin)")
    lb = sub.add_parser("leaderboard", help="the arena table: ratings with 95%% intervals")
    lb.add_argument("--bootstrap", type=int, default=100, help="bootstrap rounds (100)")
    lb.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    lb.add_argument("--json", action="store_true", help="one JSON object per model")
    lb.add_argument("--all-votes", action="store_true", help="named votes too, not only blind")
    lb.add_argument(
        "--include-random", action="store_true", help="votes on twin/tiny (random-weight) answers"
    )
    lb.add_argument("--no-imported", action="store_true", help="leave out imported battles")
    _run_filter_args(lb)
    a = bsub.add_parser("arena", help="leaderboard time on 100k battles; vote time at 200k runs")
    a.add_argument("--battles", type=int, default=100_000)
    a.add_argument("--models", type=int, default=20)
    a.add_argument("--rounds", type=int, default=100)
    a.add_argument("--runs", type=int, default=200_000)
    a.add_argument("--json", action="store_true")


def _lengths(arg: str) -> list[int]:
    try:
        values = [int(x) for x in arg.split(",") if x.strip()]
    except ValueError:
        wanted = f"expected token counts like 1,512,2048, got {arg!r}"
        raise argparse.ArgumentTypeError(wanted) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("each input length must be at least 1 token")
    return values


def _keys(arg: str | None) -> list[str]:
    return [k.strip() for k in arg.split(",") if k.strip()] if arg else default_model_keys()


def print_side_by_side(results: list[GenerationResult], labels: list[str]) -> None:
    width = shutil.get_terminal_size((120, 24)).columns
    col = max(30, (width - 3 * (len(results) - 1)) // len(results))
    blocks = []
    for label, r in zip(labels, results, strict=True):
        lines = [f"{label} [{r.source}]", "-" * min(col, 40)]
        if warning := twin_warning(r.source):
            lines += textwrap.wrap("WARNING: " + warning, col)
        if r.error:
            lines.append(f"ERROR: {r.error}")
        if r.reasoning:
            lines += ["<reasoning>", *textwrap.wrap(r.reasoning, col), "</reasoning>"]
        for para in (r.text or "").splitlines() or [""]:
            lines += textwrap.wrap(para, col) or [""]
        blocks.append([line[:col] for line in lines])
    for row in itertools.zip_longest(*blocks, fillvalue=""):
        print(" | ".join(cell.ljust(col) for cell in row).rstrip())
    print()
    name_w = max(len(n) for n in MEASURED) + 2
    print("metric".ljust(name_w) + "".join(label[:20].rjust(22) for label in labels))
    for name in ("status", "finish_reason", "mode", "overlapped", *MEASURED):
        cells = [fmt_metric(name, getattr(r, name)) for r in results]
        print(name.ljust(name_w) + "".join(v.rjust(22) for v in cells))


def cmd_compare(args: argparse.Namespace) -> int:
    from qwen_dash.engine import ModelPool

    specs = load_specs()
    keys = _keys(args.models)
    thinking = args.thinking == "on"
    unknown = [k for k in keys if k not in specs]
    if unknown:
        print(
            f"error: unknown model {', '.join(unknown)}; known: {', '.join(specs)}", file=sys.stderr
        )
        return 2
    try:
        settings = {
            k: recommended_settings(
                specs[k],
                thinking,
                max_new_tokens=args.max_new_tokens,
                greedy=args.greedy,
                seed=args.seed,
            )
            for k in keys
        }
        request = CompareRequest.from_prompt(args.prompt, settings, args.system, args.mode)
        validate_request(request, specs)  # before any worker starts
        store = None if args.no_log else open_store()  # a bad database fails now, not after
        with ModelPool(keys, source=args.source) as pool:
            comparison = pool.compare(request)
            if not args.json:
                print(f"Loading {', '.join(keys)} (source {args.source})...", file=sys.stderr)
            results = comparison.wait()
    except (RequestError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ordered = [results[k] for k in keys]
    run_id = None if store is None else log_run(store, request, results, sys.stderr)
    if args.json:
        print(json.dumps([r.to_dict() | {"run_id": run_id} for r in ordered], indent=2))
    else:
        print_side_by_side(ordered, [specs[k].label for k in keys])
        if run_id is not None:
            print(f"\nlogged as run {run_id}")
    return 0 if all(r.status == "ok" for r in ordered) else 1


def _when(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RequestError(f"{flag} must be an ISO date or time, got '{value}'.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _run_filters(args: argparse.Namespace) -> RunFilters:
    return RunFilters(
        text=clean_search(getattr(args, "text", None)),
        models=tuple(args.model),
        sources=tuple(args.source),
        since=_when(args.since, "--since"),
        until=_when(args.until, "--until"),
        tag=args.tag,
        thinking=None if args.thinking is None else args.thinking == "on",
        mode=args.mode,
    )


def cmd_export(args: argparse.Namespace) -> int:
    try:
        filters = _run_filters(args)
        store = open_store()
        if args.output == "-":
            n = store.export(args.format, filters, sys.stdout)
        else:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                n = store.export(args.format, filters, out)
    except (RequestError, StoreError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {n} runs", file=sys.stderr)
    return 0


def cmd_votes(args: argparse.Namespace) -> int:
    try:
        store = open_store()
        if args.votes == "export":
            return _votes_export(store, args.format, args.output)
        return _votes_import(store, args.file)
    except (StoreError, OSError, BattleFormatError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _votes_export(store: Store, fmt: Literal["jsonl", "json"], output: str) -> int:
    battles = [Battle(**record) for record in store.battle_records()]
    text = dump_battles(battles, fmt) if battles or fmt == "jsonl" else "[]\n"
    if output == "-":
        sys.stdout.write(text)
    else:
        with open(output, "w", encoding="utf-8") as out:
            out.write(text)
    print(f"exported {len(battles)} battles", file=sys.stderr)
    return 0


def _votes_import(store: Store, path: str) -> int:
    if path == "-":
        text, name = sys.stdin.read(), "<stdin>"
    else:
        with open(path, encoding="utf-8") as f:
            text, name = f.read(), path
    battles = parse_battles(text, name)  # all or nothing: an error imports no record
    result = store.import_battles(b.to_record() for b in battles)
    print(f"imported {result.added} battles; {result.skipped} were here already", file=sys.stderr)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from qwen_dash.views import leaderboard as arena

    if args.bootstrap < 1:
        print("error: --bootstrap must be at least 1", file=sys.stderr)
        return 2
    try:
        filters = VoteFilters(
            runs=_run_filters(args),
            blind_only=not args.all_votes,
            include_random=args.include_random,
            include_imported=not args.no_imported,
        )
        data = arena.load(open_store(), filters, bootstrap=args.bootstrap, seed=args.seed)
    except (RequestError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([] if data.board is None else arena.records(data.board), indent=1))
    elif data.board is None:
        print("No battles match: vote on the Compare page, or import a file (votes import).")
    else:
        print(arena.text_table(data.board))
    for note in data.notes + ([] if data.board is None else data.board.notes):
        print(f"note: {note}", file=sys.stderr)
    return 0


def log_run(
    store: Store, request: CompareRequest, results: dict[str, GenerationResult], err: TextIO
) -> int | None:
    """Save the run; on failure say so and keep going: the answers are printed all the same."""
    try:
        return store.save_comparison(request, results, kind="cli")
    except (StoreError, SQLAlchemyError) as exc:
        print(f"warning: run not logged: {exc}", file=err)
        return None


def cmd_bench_speed(args: argparse.Namespace) -> int:
    from qwen_dash.bench.speed import run_speed

    keys = _keys(args.models)
    unknown = [k for k in keys if k not in load_specs()]
    if unknown:
        print(f"error: unknown model {', '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        store = None if args.no_log else open_store()
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_speed(
        keys, args.source, args.protocol, args.inputs, args.output, args.json, store, args.fresh
    )


def cmd_suite_run(args: argparse.Namespace) -> int:
    from qwen_dash.engine import ModelPool
    from qwen_dash.services import suite_report
    from qwen_dash.services.suite_runner import (
        SuitePlan,
        SuiteRunError,
        SuiteRunner,
        choose_models,
        with_repeat,
    )

    path = Path(args.file)
    specs = load_specs()
    try:
        suite = load_suite(path, allow_python=True, known_models=list(specs))
        suite = with_repeat(suite, args.repeat)
        requested = _keys(args.models) if args.models else None
        models = choose_models(suite, requested, list(specs))
        plan = SuitePlan(suite, path.read_text(encoding="utf-8"), models)
        store = open_store()
        pool = ModelPool(list(models), source=args.source)
        live = SuiteRunner(pool, store).prepare(plan, _case_printer(args.json))
    except (SuiteError, SuiteRunError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return suite_report.EXIT_INVALID
    if not args.json:
        print(
            f"Running {suite.name}: {live.total} cases on {', '.join(models)} "
            f"(source {args.source})...",
            file=sys.stderr,
        )
    try:
        with pool:
            live.run()
    except KeyboardInterrupt:
        print("stopped: what finished is logged", file=sys.stderr)
    return _suite_report(live, args)


def _case_printer(as_json: bool) -> Callable[[Any], None]:
    from qwen_dash.services import suite_report

    def show(outcome: Any) -> None:
        if as_json:
            for record in suite_report.case_records(outcome):
                print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            for line in suite_report.text_lines(outcome):
                print(line, flush=True)

    return show


def _suite_report(live: Any, args: argparse.Namespace) -> int:
    from qwen_dash.services import suite_report

    if args.json:
        print(json.dumps(suite_report.summary_record(live), ensure_ascii=False), flush=True)
    else:
        for line in suite_report.summary_lines(live):
            print(line)
    if args.junit:
        tree = suite_report.junit_xml(live)
        ET.indent(tree)
        tree.write(args.junit, encoding="utf-8", xml_declaration=True)
    if live.error:
        print(f"error: {live.error}", file=sys.stderr)
    return suite_report.exit_status(live)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Sub-commands owned by other modules take their own arguments.
    if argv[:2] == ["bench", "store"]:
        from qwen_dash.bench.store import main as bench_store_main

        return bench_store_main(argv[2:]) or 0
    if argv[:2] == ["bench", "pages"]:
        from qwen_dash.bench.pages import main as bench_pages_main

        return bench_pages_main(argv[2:]) or 0
    if argv[:2] == ["bench", "remote"]:
        from qwen_dash.bench.remote import main as bench_remote_main

        return bench_remote_main(argv[2:])
    args = _parser().parse_args(argv)
    try:
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "export":
            return cmd_export(args)
        if args.command == "votes":
            return cmd_votes(args)
        if args.command == "leaderboard":
            return cmd_leaderboard(args)
        if args.command == "suite":
            return cmd_suite_run(args)
        if args.bench == "arena":
            from qwen_dash.bench.arena import run_arena_bench

            run_arena_bench(args.battles, args.models, args.rounds, args.runs, args.json)
            return 0
        if args.bench == "suite":
            from qwen_dash.bench.suite import run_suite_bench

            return run_suite_bench(args.source, args.cases, args.page_cases, args.json)
        from qwen_dash.bench import engine

        if args.bench == "speed":
            return cmd_bench_speed(args)
        if args.bench == "overhead":
            return engine.run_overhead(
                _keys(args.models), args.source, args.tokens, args.rounds, args.json
            )
        return engine.run_startup(_keys(args.models), args.source, args.json)
    except (SpecError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
