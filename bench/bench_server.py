"""Load test of the server: identify with N concurrent clients for a fixed time, on loopback only.

Starts `faceid serve` on a free 127.0.0.1 port with a fresh SQLite store, enrolls a few people from the media
data set, then N client threads (one HTTP connection each) post the probe photo to /api/v1/identify as fast as
the answers come, for --seconds. Reports requests/s, latency percentiles and errors; --write puts the result
in bench/RESULTS.md (section "Server load"). The loop is bounded by time and stops by itself.

    python bench/bench_server.py                       # 8 clients, 60 s, probe obama-480p.jpg
    python bench/bench_server.py --clients 4 --seconds 20 --write
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from common import command_line, dataset, machine, write_results_section

PASSWORD = "bench-admin-password"
GALLERY = [
    ("Barack Obama", "obama.jpg"),
    ("Joe Biden", "biden.jpg"),
    ("Alex Lacamoire", "alex-lacamoire.png"),
    ("Lin-Manuel Miranda", "lin-manuel-miranda.png"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path, port: int, detector: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FACEID_ADMIN_PASSWORD": PASSWORD}
    command = [
        sys.executable,
        "-m",
        "faceid",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--detector",
        detector,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    sys.exit("the server did not start within 120 s")


def prepare(base: str, media: Path) -> str:
    """Enroll the gallery as admin; return an API key with the identify scope."""
    with httpx.Client(base_url=base, timeout=60) as client:
        login = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})
        login.raise_for_status()
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        for name, file in GALLERY:
            kind = "image/png" if file.endswith(".png") else "image/jpeg"
            response = client.post(
                "/api/v1/enroll", data={"name": name}, files={"photos": (file, (media / file).read_bytes(), kind)}
            )
            response.raise_for_status()
        key = client.post("/api/v1/api-keys", json={"name": "bench", "scopes": ["identify"]})
        key.raise_for_status()
        return str(key.json()["key"])


def run_load(base: str, key: str, probe: bytes, clients: int, seconds: float) -> tuple[list[float], int, int]:
    latencies: list[float] = []
    errors = 0
    known = 0
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker() -> None:
        nonlocal errors, known
        mine: list[float] = []
        bad = hits = 0
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
            start.wait()
            while time.monotonic() < stop_at[0]:
                t0 = time.perf_counter()
                try:
                    response = client.post("/api/v1/identify", files={"photo": ("probe.jpg", probe, "image/jpeg")})
                    ok = response.status_code == 200
                    hits += ok and any(f["known"] for f in response.json()["faces"])
                except httpx.HTTPError:
                    ok = False
                mine.append(time.perf_counter() - t0)
                bad += not ok
        with lock:
            latencies.extend(mine)
            errors += bad
            known += hits

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.monotonic() + seconds
    start.wait()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    return latencies, errors, known


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--probe", default="obama-480p.jpg", help="file in the media data set")
    parser.add_argument("--detector", default="fast")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    if not 1 <= args.clients <= 64 or not 1 <= args.seconds <= 600:
        sys.exit("--clients 1..64 and --seconds 1..600")
    media = dataset("media")
    probe = (media / args.probe).read_bytes()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        server = start_server(Path(folder) / "data", port, args.detector)
        try:
            base = f"http://127.0.0.1:{port}"
            key = prepare(base, media)
            run_load(base, key, probe, args.clients, 3.0)  # warm-up: caches, connection pools, thread pool
            load_before = os.getloadavg()[0]
            began = time.monotonic()
            latencies, errors, known = run_load(base, key, probe, args.clients, args.seconds)
            elapsed = time.monotonic() - began
            load_after = os.getloadavg()[0]
        finally:
            server.terminate()
            server.wait(timeout=30)
    ms = np.array(latencies) * 1000
    rate = len(latencies) / elapsed
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    summary = (
        f"{len(latencies)} requests in {elapsed:.1f} s: {rate:.1f} req/s; latency p50 {p50:.0f} ms, "
        f"p95 {p95:.0f} ms, p99 {p99:.0f} ms, max {ms.max():.0f} ms; errors {errors}; "
        f"answers naming the enrolled person {known}/{len(latencies)}"
    )
    print(summary)
    busy = load_before > 2.5
    load_note = (
        "other work shares these cores, so the figures are a floor"
        if busy
        else "the server and the clients were alone on the machine; the clients' own work shares the 2 cores"
    )
    text = f"""## Server load (identify over HTTP)

`{command_line()}`

{machine()}. One `faceid serve` process (SQLite, detector `{args.detector}`, gallery of
{len(GALLERY)} people) and {args.clients} client threads on the same machine, each posting `{args.probe}` to
`POST /api/v1/identify` with an API key over its own loopback connection, back to back for {args.seconds:g} s
(after a 3 s warm-up). Latency is as the client sees it: upload, decode, detect, embed, search, answer.
Every answer was checked; {known} of {len(latencies)} named the enrolled person. The machine's 1-minute load average
was {load_before:.1f} before the run and {load_after:.1f} after it: {load_note}.

| clients | seconds | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| {args.clients} | {elapsed:.0f} | {len(latencies)} | {rate:.1f} | {p50:.0f} | {p95:.0f} | {p99:.0f} \
| {ms.max():.0f} | {errors} |
"""
    if args.write:
        write_results_section("bench_server", text)
        print("updated bench/RESULTS.md")
    if errors:
        sys.exit(1)


if __name__ == "__main__":
    main()
