"""Commands on the face database: people ..., identify, gallery export/import/check, calibrate, bench identify."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from faceid.cli.common import CommandError, add_json_option, add_store_location, echo, print_json, progress_wanted
from faceid.settings import current
from faceid.store.calibrate import DEFAULT_TARGET_FPIR, DEFAULT_TARGET_GALLERY
from faceid.store.match import METHOD_COHORT, METHOD_DISTANCE
from faceid.store.records import stranger_odds
from faceid.thresholds import COHORT_K

METHODS = {"cohort": METHOD_COHORT, "distance": METHOD_DISTANCE}


def _add_store_options(parser: argparse.ArgumentParser, photos: bool = False) -> None:
    group = parser.add_argument_group("store")
    add_store_location(group)
    group.add_argument(
        "--index",
        choices=["auto", "exact", "approx", "pgvector"],
        default="auto",
        help="search index (auto: by gallery size; approx: FAISS IVF in memory; pgvector: HNSW in PostgreSQL)",
    )
    if photos:
        from faceid.cli.vision_commands import add_analyzer_options

        add_analyzer_options(parser, descriptor=False)
    add_json_option(parser)


def _open(args: argparse.Namespace) -> Any:
    from faceid.store.versions import VersionedStore as Store  # follows the active model version

    analyzer = None
    if hasattr(args, "detector"):
        from faceid.cli.vision_commands import analyzer_from_args

        analyzer = analyzer_from_args(args)
    return Store(args.data_dir, args.db, analyzer=analyzer, index=args.index)


def _metadata(pairs: list[str] | None) -> dict[str, Any] | None:
    if not pairs:
        return None
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--meta takes KEY=VALUE, not {pair!r}")
        try:
            result[key] = json.loads(value)
        except ValueError:
            result[key] = value
    return result


def _person_ref(text: str) -> int | str:
    return text


def _key(args: argparse.Namespace) -> bytes | None:
    if getattr(args, "key_file", None):
        path = Path(args.key_file)
        if not path.is_file():
            raise CommandError(f"{path}: no such key file")
        return path.read_bytes().strip()
    env = current().archive_key
    return env.encode() if env else None


def _print_person(person: Any) -> None:
    extra = f"  external id {person.external_id}" if person.external_id else ""
    echo(f"{person.id:>6}  {person.name}  ({person.face_count} face{'s' if person.face_count != 1 else ''}){extra}")


# -- people ---------------------------------------------------------------------------------------


def _cmd_enroll(args: argparse.Namespace) -> int:
    with _open(args) as store:
        person = store.enroll(
            args.name,
            list(args.images),
            external_id=args.external_id,
            notes=args.notes,
            metadata=_metadata(args.meta),
            pick="largest" if args.largest else "one",
        )
    if args.json:
        print_json(person.to_dict())
    else:
        echo(f"enrolled {person.name} (id {person.id}) with {person.face_count} face(s)")
    return 0


def _cmd_add_face(args: argparse.Namespace) -> int:
    with _open(args) as store:
        faces = store.add_faces(_person_ref(args.person), list(args.images), pick="largest" if args.largest else "one")
    if args.json:
        print_json([f.to_dict() for f in faces])
    else:
        echo(f"added {len(faces)} face(s): ids {', '.join(str(f.id) for f in faces)}")
    return 0


def _cmd_remove_face(args: argparse.Namespace) -> int:
    with _open(args) as store:
        face = store.remove_face(args.face_id)
    if args.json:
        print_json(face.to_dict())
    else:
        echo(f"removed face {face.id} of person {face.person_id}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        people = store.list_people(query=args.query, limit=args.limit, offset=args.offset)
    if args.json:
        print_json([p.to_dict() for p in people])
    else:
        for person in people:
            _print_person(person)
        if not people:
            echo("no people" + (f" matching {args.query!r}" if args.query else ""))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        person = store.get_person(_person_ref(args.person))
        faces = store.faces(person.id)
    if args.json:
        print_json({**person.to_dict(), "faces": [f.to_dict() for f in faces]})
        return 0
    _print_person(person)
    if person.notes:
        echo(f"  notes: {person.notes}")
    if person.metadata:
        echo(f"  metadata: {json.dumps(person.metadata)}")
    for face in faces:
        quality = f"{face.quality:.2f}" if face.quality is not None else "-"
        echo(f"  face {face.id}: model {face.model_id}, quality {quality}, image {face.image_sha256 or '-'}")
    return 0


def _cmd_edit(args: argparse.Namespace) -> int:
    with _open(args) as store:
        person = store.update_person(
            _person_ref(args.person),
            name=args.name,
            external_id=args.external_id,
            clear_external_id=args.clear_external_id,
            notes=args.notes,
            metadata=_metadata(args.meta),
            merge_metadata=not args.replace_meta,
        )
    if args.json:
        print_json(person.to_dict())
    else:
        _print_person(person)
    return 0


def _cmd_rename(args: argparse.Namespace) -> int:
    with _open(args) as store:
        person = store.update_person(_person_ref(args.person), name=args.new_name)
    if args.json:
        print_json(person.to_dict())
    else:
        echo(f"renamed to {person.name} (id {person.id})")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    with _open(args) as store:
        person = store.merge_people(_person_ref(args.keep), _person_ref(args.absorb))
    if args.json:
        print_json(person.to_dict())
    else:
        echo(f"merged into {person.name} (id {person.id}), now {person.face_count} face(s)")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    with _open(args) as store:
        summary = store.delete_person(_person_ref(args.person))
    if args.json:
        print_json(summary)
    else:
        echo(
            f"deleted {summary['name']} (id {summary['id']}): {summary['faces']} face(s), {summary['events']} event(s)"
        )
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from faceid.store.bulk import import_folder

    root = Path(args.root)
    if not root.is_dir():
        raise CommandError(f"{root}: no such folder")
    with _open(args) as store:
        report = import_folder(
            store,
            root,
            pick="largest" if args.largest else "one" if args.strict else "subject",
            max_photos=args.max_photos,
            progress=progress_wanted(args),
        )
    if args.json:
        print_json(report.to_dict())
        return 0
    echo(f"enrolled {report.people_enrolled} people with {report.faces_enrolled} faces")
    if report.chosen:
        rules = ", ".join(f"{n} {how}" for how, n in sorted(report.chosen_by_rule().items()))
        echo(f"took one face of {len(report.chosen)} photos with several: {rules}")
        for item in report.chosen[: args.show_skipped]:
            echo(f"  {item['path']}: face {item['face']} of {item['faces']} (1 = largest), {item['how']}")
    if report.skipped_images:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(report.reasons().items()))
        echo(f"skipped {len(report.skipped_images)} photos: {reasons}")
        for item in report.skipped_images[: args.show_skipped]:
            echo(f"  {item['path']}: {item['reason']}")
    for item in report.skipped_people[: args.show_skipped]:
        echo(f"skipped person {item['name']}: {item['reason']}")
    return 0


# -- identify -------------------------------------------------------------------------------------


def _cmd_identify(args: argparse.Namespace) -> int:
    results = []
    with _open(args) as store:
        for image in args.images:
            found = store.identify(image, top_k=args.top_k, max_faces=None if args.all_faces else 1)
            results.append({"image": str(image), "faces": [r.to_dict() for r in found]})
    if args.json:
        print_json(results)
        return 0
    for result in results:
        if not result["faces"]:
            echo(f"{result['image']}: no face found")
        for number, face in enumerate(result["faces"]):
            prefix = f"{result['image']}" + (f" #{number}" if len(result["faces"]) > 1 else "")
            if face["known"]:
                person = face["person"]
                echo(
                    f"{prefix}: {person['name']} (id {person['person_id']}), distance {person['distance']:.3f}; "
                    f"{stranger_odds(face['stranger_rate'])}"
                )
            elif face["outcome"] == "ambiguous":
                first, second = face["candidates"][:2]
                echo(
                    f"{prefix}: ambiguous: {first['name']} (distance {first['distance']:.3f}) or {second['name']} "
                    f"(distance {second['distance']:.3f}), too close to call"
                )
            else:
                best = face["candidates"][0] if face["candidates"] else None
                hint = f" (nearest: {best['name']}, distance {best['distance']:.3f})" if best else ""
                echo(f"{prefix}: unknown{hint}")
    return 0


# -- gallery --------------------------------------------------------------------------------------


def _cmd_export(args: argparse.Namespace) -> int:
    from faceid.store.archive import export_archive

    with _open(args) as store:
        summary = export_archive(store, args.archive, key=_key(args), progress=progress_wanted(args))
    if args.json:
        print_json(summary)
    else:
        counts = f"{summary['people']} people, {summary['faces']} faces, {summary['image_count']} images"
        echo(f"exported {counts} to {args.archive}")
    return 0


def _cmd_import_archive(args: argparse.Namespace) -> int:
    from faceid.store.archive import import_archive

    with _open(args) as store:
        report = import_archive(
            store, args.archive, key=_key(args), skip_existing=args.skip_existing, progress=progress_wanted(args)
        )
    if args.json:
        print_json(report.to_dict())
    else:
        echo(f"imported {report.people_enrolled} people with {report.faces_enrolled} faces")
        for item in report.skipped_people:
            echo(f"skipped {item['name']}: {item['reason']}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    with _open(args) as store:
        report = store.check()
    if args.json:
        print_json(report)
    else:
        echo(f"{report['people']} people, {report['faces']} faces, {report['images']} image files")
        for key in ("missing_images", "orphan_images", "people_without_faces", "pending_journals"):
            if report[key]:
                echo(f"{key.replace('_', ' ')}: {len(report[key])}")
        echo("consistent" if report["ok"] else "NOT consistent")
    return 0 if report["ok"] else 1


def _cmd_info(args: argparse.Namespace) -> int:
    with _open(args) as store:
        info = store.stats()
        calibrations = {}
        for model in info["faces_by_model"]:
            calibration = store.calibration(model)
            calibrations[model] = None if calibration is None else calibration.summary()
        info["calibration"] = calibrations
    if args.json:
        print_json(info)
    else:
        for key, value in info.items():
            echo(f"{key}: {value}")
    return 0


# -- events ---------------------------------------------------------------------------------------


def _cmd_events(args: argparse.Namespace) -> int:
    with _open(args) as store:
        events = store.list_events(
            person=_person_ref(args.person) if args.person else None,
            source=args.source,
            unknown_only=args.unknown,
            limit=args.limit,
        )
    if args.json:
        print_json([e.to_dict() for e in events])
    else:
        for event in events:
            who = f"person {event.person_id}" if event.person_id is not None else "unknown"
            echo(f"{event.time.isoformat()}  {event.source or '-'}  {who}  distance {event.distance}")
    return 0


# -- calibration and benchmark --------------------------------------------------------------------


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from faceid.store.calibrate import calibrate_from_folder, calibrate_from_pairs

    root = Path(args.root)
    if not root.is_dir():
        raise CommandError(f"{root}: no such folder")
    with _open(args) as store:
        if args.pairs:
            pairs = Path(args.pairs)
            if not pairs.is_file():
                raise CommandError(f"{pairs}: no such pairs file")
            calibration = calibrate_from_pairs(
                store,
                pairs,
                root,
                method=METHODS[args.method],
                target_fpir=args.target_fpir,
                gallery_size=args.gallery_size,
                progress=progress_wanted(args),
            )
        else:
            calibration = calibrate_from_folder(
                store,
                root,
                method=METHODS[args.method],
                target_fpir=args.target_fpir,
                gallery_size=args.gallery_size,
                progress=progress_wanted(args),
            )
        if not args.dry_run:
            store.save_calibration(calibration)
    summary = calibration.summary() | {"saved": not args.dry_run}
    if args.json:
        print_json(summary)
    else:
        echo(
            f"model {calibration.model_id}: method {calibration.method}, threshold {calibration.threshold:.4f} "
            f"for {100 * args.target_fpir:g}% strangers matched at {args.gallery_size} people"
            + ("" if args.dry_run else " (saved)")
        )
        for key, value in calibration.details.items():
            echo(f"  {key}: {value}")
    return 0


def _cmd_bench_identify(args: argparse.Namespace) -> int:
    from faceid.cli.vision_commands import analyzer_from_args
    from faceid.store.identify_bench import format_report, run_identification_benchmark

    root = Path(args.root)
    if not root.is_dir():
        raise CommandError(f"{root}: no such folder")
    sizes: list[int | str] = []
    for size in args.sizes.split(","):
        size = size.strip()
        if size == "all":
            sizes.append("all")
        elif size.isdigit() and int(size) >= 2:
            sizes.append(int(size))
        else:
            raise CommandError(f"--sizes takes numbers >= 2 or 'all', not {size!r}")
    report = run_identification_benchmark(
        analyzer_from_args(args),
        root,
        sizes=sizes,
        draws=args.draws,
        enroll_per_person=args.enroll,
        max_probes=args.max_probes,
        cohort_k=args.cohort_k,
        use_cache=not args.no_cache,
        progress=not args.quiet and not args.json,
    )
    if args.json:
        print_json(report)
    else:
        echo(format_report(report))
    return 0


# -- registration ---------------------------------------------------------------------------------


def _group(subparsers: argparse._SubParsersAction, name: str, help_text: str, dest: str) -> argparse._SubParsersAction:
    """The sub-command group ``name``, created here or joined if another module made it first."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help_text)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return parser.add_subparsers(dest=dest, metavar="ACTION", required=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    people = _group(subparsers, "people", "the people in the face database", "people_command")

    enroll = people.add_parser("enroll", help="add a person from one photo or several")
    enroll.add_argument("name", metavar="NAME")
    enroll.add_argument("images", nargs="+", metavar="IMG")
    enroll.add_argument("--external-id", default=None, help="your own id for this person (unique)")
    enroll.add_argument("--notes", default=None)
    enroll.add_argument("--meta", action="append", metavar="KEY=VALUE", help="metadata (repeatable; VALUE may be JSON)")
    enroll.add_argument("--largest", action="store_true", help="in a photo with several faces, take the largest")
    _add_store_options(enroll, photos=True)
    enroll.set_defaults(handler=_cmd_enroll)

    add_face = people.add_parser("add-face", help="add photos to a person")
    add_face.add_argument("person", metavar="NAME_OR_ID")
    add_face.add_argument("images", nargs="+", metavar="IMG")
    add_face.add_argument("--largest", action="store_true", help="in a photo with several faces, take the largest")
    _add_store_options(add_face, photos=True)
    add_face.set_defaults(handler=_cmd_add_face)

    remove_face = people.add_parser("remove-face", help="delete one face (by face id)")
    remove_face.add_argument("face_id", type=int, metavar="FACE_ID")
    _add_store_options(remove_face)
    remove_face.set_defaults(handler=_cmd_remove_face)

    listing = people.add_parser("list", help="list people (optionally those whose name contains QUERY)")
    listing.add_argument("query", nargs="?", default=None, metavar="QUERY")
    listing.add_argument("--limit", type=int, default=None)
    listing.add_argument("--offset", type=int, default=0)
    _add_store_options(listing)
    listing.set_defaults(handler=_cmd_list)

    find = people.add_parser("find", help="people whose name contains QUERY")
    find.add_argument("query", metavar="QUERY")
    find.add_argument("--limit", type=int, default=20)
    find.add_argument("--offset", type=int, default=0)
    _add_store_options(find)
    find.set_defaults(handler=_cmd_list)

    show = people.add_parser("show", help="one person with their faces")
    show.add_argument("person", metavar="NAME_OR_ID")
    _add_store_options(show)
    show.set_defaults(handler=_cmd_show)

    rename = people.add_parser("rename", help="rename a person")
    rename.add_argument("person", metavar="NAME_OR_ID")
    rename.add_argument("new_name", metavar="NEW_NAME")
    _add_store_options(rename)
    rename.set_defaults(handler=_cmd_rename)

    edit = people.add_parser("edit", help="change a person's name, external id, notes or metadata")
    edit.add_argument("person", metavar="NAME_OR_ID")
    edit.add_argument("--name", default=None)
    edit.add_argument("--external-id", default=None)
    edit.add_argument("--clear-external-id", action="store_true")
    edit.add_argument("--notes", default=None, help="new notes ('' clears them)")
    edit.add_argument("--meta", action="append", metavar="KEY=VALUE", help="metadata to set (repeatable)")
    edit.add_argument("--replace-meta", action="store_true", help="replace all metadata instead of merging")
    _add_store_options(edit)
    edit.set_defaults(handler=_cmd_edit)

    merge = people.add_parser("merge", help="move everything of ABSORB into KEEP and delete ABSORB")
    merge.add_argument("keep", metavar="KEEP")
    merge.add_argument("absorb", metavar="ABSORB")
    _add_store_options(merge)
    merge.set_defaults(handler=_cmd_merge)

    remove = people.add_parser("delete", help="delete a person with all their faces, images and events")
    remove.add_argument("person", metavar="NAME_OR_ID")
    _add_store_options(remove)
    remove.set_defaults(handler=_cmd_delete)

    bulk = people.add_parser(
        "import",
        help="enroll everyone in a folder tree ROOT/<person>/<photos>; of a photo with several faces, the one "
        "that agrees with the person's other photos",
    )
    bulk.add_argument("root", metavar="ROOT")
    several = bulk.add_mutually_exclusive_group()
    several.add_argument(
        "--largest", action="store_true", help="in a photo with several faces, take the largest (not the subject's)"
    )
    several.add_argument("--strict", action="store_true", help="skip every photo with several faces")
    bulk.add_argument("--max-photos", type=int, default=None, help="at most this many photos per person")
    bulk.add_argument(
        "--show-skipped", type=int, default=20, help="list at most this many skipped items (and faces taken)"
    )
    bulk.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_store_options(bulk, photos=True)
    bulk.set_defaults(handler=_cmd_import)

    identify = subparsers.add_parser("identify", help="who is in these photos? (a person, or unknown)")
    identify.add_argument("images", nargs="+", metavar="IMG")
    identify.add_argument("--top-k", type=int, default=5, help="candidates listed per face")
    identify.add_argument("--all-faces", action="store_true", help="every face, not only the largest")
    _add_store_options(identify, photos=True)
    identify.set_defaults(handler=_cmd_identify)

    gallery = _group(subparsers, "gallery", "the face database as a whole", "gallery_command")
    export = gallery.add_parser("export", help="write the whole gallery to one archive (zip)")
    export.add_argument("archive", metavar="ARCHIVE")
    export.add_argument("--key-file", default=None, help="sign the archive with this key (or $FACEID_ARCHIVE_KEY)")
    _add_store_options(export)
    export.set_defaults(handler=_cmd_export)

    restore = gallery.add_parser("import", help="import an archive made by 'gallery export' (all or nothing)")
    restore.add_argument("archive", metavar="ARCHIVE")
    restore.add_argument("--key-file", default=None, help="check the archive's signature with this key")
    restore.add_argument("--skip-existing", action="store_true", help="leave out people already in the store")
    _add_store_options(restore)
    restore.set_defaults(handler=_cmd_import_archive)

    check = gallery.add_parser("check", help="check that database and image folder agree (exit 1 if not)")
    _add_store_options(check)
    check.set_defaults(handler=_cmd_check)

    info = gallery.add_parser("info", help="counts, database, calibration")
    _add_store_options(info)
    info.set_defaults(handler=_cmd_info)

    events = subparsers.add_parser("events", help="recognition events, newest first")
    events.add_argument("--person", default=None, metavar="NAME_OR_ID")
    events.add_argument("--source", default=None)
    events.add_argument("--unknown", action="store_true", help="only unknown faces")
    events.add_argument("--limit", type=int, default=50)
    _add_store_options(events)
    events.set_defaults(handler=_cmd_events)

    calibrate = subparsers.add_parser(
        "calibrate", help="choose the decision threshold from labelled photos and store it for the model"
    )
    calibrate.add_argument("--root", required=True, help="labelled photos: ROOT/<person>/<photos>")
    calibrate.add_argument("--pairs", default=None, help="an LFW-style pairs file naming photos under ROOT")
    calibrate.add_argument(
        "--target-fpir", type=float, default=DEFAULT_TARGET_FPIR, help="share of strangers allowed to match someone"
    )
    calibrate.add_argument(
        "--gallery-size", type=int, default=DEFAULT_TARGET_GALLERY, help="gallery size the target refers to"
    )
    calibrate.add_argument(
        "--method",
        choices=sorted(METHODS),
        default="cohort",
        help="cohort: normalise scores with a background cohort (measured best); distance: plain centroid distance",
    )
    calibrate.add_argument("--dry-run", action="store_true", help="report the threshold without storing it")
    calibrate.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_store_options(calibrate, photos=True)
    calibrate.set_defaults(handler=_cmd_calibrate)

    bench = _group(subparsers, "bench", "measure speed or accuracy", "bench_command")
    bench_identify = bench.add_parser(
        "identify", help="open-set identification on a labelled folder (faces-dev layout)"
    )
    bench_identify.add_argument("--root", required=True, help="ROOT/<person>/<person>_NNNN.jpg")
    bench_identify.add_argument("--sizes", default="50,200,all", help="gallery sizes, comma separated ('all' allowed)")
    bench_identify.add_argument("--draws", type=int, default=5, help="random galleries per size (seeds 0..N-1)")
    bench_identify.add_argument("--enroll", type=int, default=1, help="photos enrolled per person (lowest-numbered)")
    bench_identify.add_argument("--max-probes", type=int, default=10, help="probe photos per enrolled person")
    bench_identify.add_argument(
        "--cohort-k", type=int, default=COHORT_K, help="cohort faces averaged per score normalisation"
    )
    bench_identify.add_argument("--no-cache", action="store_true", help="recompute every embedding")
    bench_identify.add_argument("--quiet", action="store_true", help="no progress bar")
    from faceid.cli.vision_commands import add_analyzer_options

    add_analyzer_options(bench_identify)
    add_json_option(bench_identify)
    bench_identify.set_defaults(handler=_cmd_bench_identify)
