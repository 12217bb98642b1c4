"""Identification quality on faces-dev: closed-set rank-1 and DIR at FPIR 1% / 0.1%, plain nearest neighbour
side by side with each improvement, for 1 photo enrolled per person (the protocol of the acceptance test)
and for 3 (where scoring a person by the centroid of their faces or by their nearest face differs).

The same as ``faceid bench identify --root DIR``, run twice; the protocol is described in
``faceid.store.identify_bench``. Descriptors are cached on disk, so a second run takes seconds.

    python bench/bench_identify.py [--draws 5] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import command_line, dataset, machine
from faceid.store.identify_bench import format_report, run_identification_benchmark


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--enroll", default="1,3", help="photos enrolled per person, one run each")
    parser.add_argument("--json", default=None, help="also write the reports to this file")
    args = parser.parse_args()
    import faceid

    root = dataset("faces-dev")
    analyzer = faceid.Analyzer()
    print(f"command: {command_line()}")
    print(f"machine: {machine()}")
    reports = []
    for enroll in (int(e) for e in args.enroll.split(",")):
        report = run_identification_benchmark(
            analyzer, root, draws=args.draws, enroll_per_person=enroll, progress=sys.stderr.isatty()
        )
        reports.append(report)
        print()
        print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
