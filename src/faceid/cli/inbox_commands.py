"""The unknown-faces inbox on the command line: ``faceid visitors ...``, ``faceid correct``, ``faceid search``,
``faceid retention``, ``faceid people forget`` and ``faceid bench visitors``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from faceid.cli.common import CommandError, add_json_option, print_json
from faceid.cli.store_commands import _add_store_options, _group, _open, echo
from faceid.store.visitors import Actor

CLI = Actor(name=None, kind="cli")


def _ids(text: str) -> list[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"event ids are numbers separated by commas, not {text!r}") from None
    if not ids:
        raise CommandError("give at least one event id")
    return ids


def _show(args: argparse.Namespace, data: Any, text: str) -> int:
    if args.json:
        print_json(data)
    else:
        echo(text)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from faceid.store.visitors import inbox

    with _open(args) as store:
        visitors = inbox(store).list_visitors(status=args.status, limit=args.limit, offset=args.offset)
    return _show(args, [v.to_dict() for v in visitors], "\n".join(v.headline() for v in visitors) or "no visitors")


def _cmd_show(args: argparse.Namespace) -> int:
    from faceid.store.visitors import inbox

    with _open(args) as store:
        visitor = inbox(store).get(args.visitor)
        events = inbox(store).events(args.visitor)
    return _show(args, visitor.to_dict() | {"event_ids": events}, f"{visitor.headline()}\nevents: {events}")


def _cmd_name(args: argparse.Namespace) -> int:
    from faceid.store.visitors import inbox
    from faceid.thresholds import VISITOR_ENROLL_CAP

    if (args.name is None) == (args.person is None):
        raise CommandError("give either a NAME (a new person) or --person (an existing one)")
    with _open(args) as store:
        cap = VISITOR_ENROLL_CAP if args.cap is None else args.cap
        result = inbox(store).name(args.visitor, args.name, person=args.person, cap=cap, actor=CLI)
    return _show(
        args,
        result,
        f"visitor {args.visitor} is now {result['person_name']} (person {result['person_id']}): "
        f"{result['faces_enrolled']} face(s) enrolled, {result['events_labelled']} event(s) labelled",
    )


def _cmd_merge(args: argparse.Namespace) -> int:
    from faceid.store.visitors import inbox

    with _open(args) as store:
        visitor = inbox(store).merge(args.into, args.other, actor=CLI)
    return _show(args, visitor.to_dict(), visitor.headline())


def _cmd_split(args: argparse.Namespace) -> int:
    from faceid.store.visitors import inbox

    with _open(args) as store:
        visitor = inbox(store).split(args.visitor, _ids(args.events), actor=CLI)
    return _show(args, visitor.to_dict(), f"split out as {visitor.headline()}")


def _cmd_ignore(args: argparse.Namespace) -> int:
    from faceid.store.visitors import inbox

    with _open(args) as store:
        visitor = inbox(store).ignore(args.visitor, not args.undo, actor=CLI)
    return _show(args, visitor.to_dict(), visitor.headline())


def _cmd_discard(args: argparse.Namespace) -> int:
    from faceid.store.visitors import inbox

    with _open(args) as store:
        result = inbox(store).discard(args.visitor, actor=CLI)
    return _show(args, result, f"visitor {args.visitor} discarded with {result['events_deleted']} event(s)")


def _cmd_recluster(args: argparse.Namespace) -> int:
    from faceid.store.visitors import inbox

    with _open(args) as store:
        if args.follow_model:  # visitors of an earlier model: their events described again from their crops
            from faceid.store.versions import analyzer_embedding

            analyzer = store.analyzer
            stats = inbox(store).follow_model(
                store.model_id, lambda crop: analyzer_embedding(analyzer, crop), actor=CLI
            )
        else:
            stats = inbox(store).recluster(actor=CLI)
    return _show(
        args,
        stats,
        f"{stats['events']} event(s): {stats['kept']} visitor(s) kept their id ({stats['unchanged']} unchanged), "
        f"{stats['new']} new, {stats['removed']} gone",
    )


def _cmd_correct(args: argparse.Namespace) -> int:
    from faceid.store.corrections import not_this_person, this_is

    if args.is_person is None and not args.not_person:
        raise CommandError("give --not (not the person it names) or --is NAME")
    with _open(args) as store:
        if args.not_person:
            result = not_this_person(store, args.event, actor=CLI)
            text = f"event {args.event} is not person {result['person_id']}: kept as their negative"
        else:
            result = this_is(store, args.event, args.is_person, actor=CLI)
            text = f"event {args.event} is person {result['person_id']}"
    return _show(args, result, text)


def _cmd_search(args: argparse.Namespace) -> int:
    from faceid.store.corrections import search_history

    given = [x for x in (args.photo, args.person, args.visitor) if x is not None]
    if len(given) != 1:
        raise CommandError("search by one of: --photo FILE, --person NAME, --visitor ID")
    with _open(args) as store:
        if args.photo is not None:
            if not Path(args.photo).is_file():
                raise CommandError(f"{args.photo}: no such file")
            embedding = store.prepare(args.photo, pick="largest").embedding
            found = search_history(store, embedding=embedding, limit=args.limit)
        else:
            found = search_history(store, person=args.person, visitor=args.visitor, limit=args.limit)
    lines = [
        f"{e['time']}  {e['source'] or '-'}  event {e['id']}  "
        + ("unknown" if e["person_id"] is None else f"person {e['person_id']}")
        + (f"  score {e['match']['score']}" if e["match"]["score"] is not None else f"  ({e['match']['via']})")
        for e in found["events"]
    ]
    return _show(args, found, "\n".join(lines) or "no event within the decision rule")


def _cmd_forget(args: argparse.Namespace) -> int:
    from faceid.store.retention import forget

    with _open(args) as store:
        receipt = forget(store, args.person, actor=CLI)
    rows = ", ".join(f"{n} {table}" for table, n in receipt["rows"].items())
    text = f"forgotten (receipt {receipt['receipt']}): {rows}; {receipt['files']['images']} image file(s) removed"
    if receipt["finetuned_versions_to_review"]:
        text += "\nfine-tuned versions made since they were enrolled (may have learnt from their faces): " + ", ".join(
            receipt["finetuned_versions_to_review"]
        )
    return _show(args, receipt, text)


def _cmd_retention(args: argparse.Namespace) -> int:
    from faceid.store.retention import apply_retention, retention_rules, set_retention

    with _open(args) as store:
        if args.retention_command == "set":
            days = None if args.days in ("forever", "none") else _days(args.days)
            rules = set_retention(store, args.kind, days, actor=CLI)
            return _show(
                args, rules, "\n".join(f"{k}: {'for ever' if d is None else f'{d} day(s)'}" for k, d in rules.items())
            )
        if args.retention_command == "apply":
            removed = apply_retention(store, actor=CLI)
            return _show(args, removed, ", ".join(f"{n} {k}" for k, n in removed.items()) + " removed")
        rules = retention_rules(store)
    return _show(args, rules, "\n".join(f"{k}: {'for ever' if d is None else f'{d} day(s)'}" for k, d in rules.items()))


def _days(text: str) -> int:
    if not text.isdigit():
        raise CommandError(f"DAYS is a whole number or 'forever', not {text!r}")
    return int(text)


def _cmd_bench_visitors(args: argparse.Namespace) -> int:
    from faceid.cli.vision_commands import analyzer_from_args
    from faceid.store.visitor_bench import format_report, run_visitor_benchmark

    root = Path(args.root)
    if not root.is_dir():
        raise CommandError(f"{root}: no such folder")
    if args.scale_events < 0:
        raise CommandError("--scale-events is 0 (none) or more")
    report = run_visitor_benchmark(
        analyzer_from_args(args),
        root,
        min_photos=args.min_photos,
        seed=args.seed,
        scale_events=args.scale_events,
        enroll_cap=args.enroll_cap,
        use_cache=not args.no_cache,
        progress=not args.quiet and not args.json,
    )
    return _show(args, report, format_report(report))


def register(subparsers: argparse._SubParsersAction) -> None:
    visitors = subparsers.add_parser("visitors", help="the unknown-faces inbox: visitors clustered from unknown events")
    actions = visitors.add_subparsers(dest="visitors_command", metavar="ACTION", required=True)

    def action(name: str, help_text: str, handler: Any) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        _add_store_options(parser)
        parser.set_defaults(handler=handler)
        return parser

    listing = action("list", "visitors, the most recently seen first", _cmd_list)
    listing.add_argument("--status", choices=["open", "ignored", "named"], default=None)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    show = action("show", "one visitor with its events", _cmd_show)
    show.add_argument("visitor", type=int)
    name = action(
        "name", "name a visitor: a new person, or --person an existing one (labels its past events)", _cmd_name
    )
    name.add_argument("visitor", type=int)
    name.add_argument("name", nargs="?", default=None, help="the new person's name")
    name.add_argument("--person", default=None, help="an existing person (id or name) to add the visitor to")
    name.add_argument("--cap", type=int, default=None, help="at most this many faces enrolled (default: the store's)")
    merge = action("merge", "move OTHER's events into INTO", _cmd_merge)
    merge.add_argument("into", type=int)
    merge.add_argument("other", type=int)
    split = action("split", "pick events out of a visitor into a new one", _cmd_split)
    split.add_argument("visitor", type=int)
    split.add_argument("events", help="event ids, comma separated")
    ignore = action("ignore", "never alert for this visitor again (still recognised as it)", _cmd_ignore)
    ignore.add_argument("visitor", type=int)
    ignore.add_argument("--undo", action="store_true", help="alert again")
    discard = action("discard", "delete an unnamed visitor with its events and snapshots", _cmd_discard)
    discard.add_argument("visitor", type=int)
    recluster = action(
        "recluster", "cluster again (after a model or threshold change); ids kept where membership is", _cmd_recluster
    )
    recluster.add_argument(
        "--follow-model",
        action="store_true",
        help="first describe the events of visitors of an earlier model again with the active one (from their crops)",
    )

    correct = subparsers.add_parser("correct", help="correct an event: --not (not the person it names) or --is NAME")
    correct.add_argument("event", type=int)
    correct.add_argument("--not", dest="not_person", action="store_true", help="not the person it names")
    correct.add_argument("--is", dest="is_person", default=None, help="the person it shows (id or name)")
    _add_store_options(correct)
    correct.set_defaults(handler=_cmd_correct)

    search = subparsers.add_parser("search", help="past events of a face, newest first: by photo, person or visitor")
    search.add_argument("--photo", default=None, help="a photo of the face")
    search.add_argument("--person", default=None, help="a person (id or name)")
    search.add_argument("--visitor", type=int, default=None, help="a visitor id")
    search.add_argument("--limit", type=int, default=100)
    _add_store_options(search, photos=True)
    search.set_defaults(handler=_cmd_search)

    people = _group(subparsers, "people", "the people in the face database", "people_command")
    forget = people.add_parser(
        "forget", help="erase a person and every trace of them (faces, events, snapshots, visitors, corrections)"
    )
    forget.add_argument("person", help="id, name or external id")
    _add_store_options(forget)
    forget.set_defaults(handler=_cmd_forget)

    retention = subparsers.add_parser("retention", help="how long each kind of record is kept")
    retention_actions = retention.add_subparsers(dest="retention_command", metavar="ACTION", required=True)
    shown = retention_actions.add_parser("show", help="days kept per kind")
    _add_store_options(shown)
    shown.set_defaults(handler=_cmd_retention)
    setting = retention_actions.add_parser("set", help="keep KIND for DAYS days ('forever': no limit)")
    from faceid.thresholds import RETENTION_KINDS

    setting.add_argument("kind", choices=RETENTION_KINDS)
    setting.add_argument("days")
    _add_store_options(setting)
    setting.set_defaults(handler=_cmd_retention)
    applying = retention_actions.add_parser("apply", help="apply the rules now")
    _add_store_options(applying)
    applying.set_defaults(handler=_cmd_retention)

    bench = _group(subparsers, "bench", "measure speed or accuracy", "bench_command")
    bench_visitors = bench.add_parser(
        "visitors",
        help="faces-dev replayed as a camera: clustering quality (BCubed), clicks to name everyone, naming, "
        "corrections, events/s",
    )
    bench_visitors.add_argument("--root", required=True, help="ROOT/<person>/<person>_NNNN.jpg")
    bench_visitors.add_argument("--min-photos", type=int, default=3, help="people with this many photos come back")
    bench_visitors.add_argument("--seed", type=int, default=0, help="seed of the time order")
    bench_visitors.add_argument("--scale-events", type=int, default=10_000, help="unknown events of the speed run")
    from faceid.thresholds import VISITOR_ENROLL_CAP

    bench_visitors.add_argument(
        "--enroll-cap", type=int, default=VISITOR_ENROLL_CAP, help="faces enrolled per visitor named"
    )
    bench_visitors.add_argument("--no-cache", action="store_true", help="recompute every embedding")
    bench_visitors.add_argument("--quiet", action="store_true", help="no progress bar")
    from faceid.cli.vision_commands import add_analyzer_options

    add_analyzer_options(bench_visitors)
    add_json_option(bench_visitors)
    bench_visitors.set_defaults(handler=_cmd_bench_visitors)
