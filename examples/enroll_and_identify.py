"""One-shot recognition with the face database: enroll each person from one photo, then identify probes.

    python examples/enroll_and_identify.py /tmp/faces-demo \\
        Obama=../shared/datasets/media/obama.jpg Biden=../shared/datasets/media/biden.jpg \\
        ../shared/datasets/media/two_people.jpg ../shared/datasets/media/alex-lacamoire.png

Arguments of the form NAME=PHOTO enroll; the others are probes. A face that matches nobody is *unknown*.
"""

import sys

from faceid.store import Store

data_dir, *arguments = sys.argv[1:]
store = Store(data_dir=data_dir)  # SQLite + a local image folder; Store(db="postgresql://...") for PostgreSQL
try:
    for argument in arguments:
        if "=" in argument:
            name, photo = argument.split("=", 1)
            person = store.enroll(name, [photo], pick="largest")
            print(f"enrolled {person.name} (id {person.id})")
            continue
        for result in store.identify(argument):
            who = result.person.name if result.person else "unknown"
            nearest = result.candidates[0] if result.candidates else None
            detail = f"nearest {nearest.name} at {nearest.distance:.3f}" if nearest else "empty gallery"
            print(f"{argument}: {who} ({detail})")
finally:
    store.close()
