"""Journeys and messaging: how soon an event-triggered message reaches its channel, and
how fast a broadcast goes out, each beside a baseline measured in the same run.

    .venv/bin/python benchmarks/journeys.py [--database sqlite|postgresql|both]
        [--rate 50] [--seconds 20] [--profiles 100000] [--skip-latency] [--skip-broadcast]
        [--cprofile]

Latency (embedded mode): this process runs the real application as `serve` does
(build_services with the pipeline runner, the scheduler and the delivery runner, under
uvicorn in a thread), pinned to one core. A generator process on the other core sends
one `Signed Up` track call per known person at a steady rate over keep-alive HTTP; an
active journey sends an email on that event with no wait step. The email adapter is
wrapped in a timing shim (the benchmark's only change to the wiring) that notes when
send() is called, then hands the email to an SMTP sink (aiosmtpd, its own process).
Figures: p50 and p99 from the acknowledgment (the 200 reaching the generator) to the
adapter's send(); baselines in the same run: the acknowledgment's own round trip, and
the time from the acknowledgment to the event being applied by the pipeline. Target
(issue 5): p99 under 250 ms.

Broadcast: N known, consenting profiles (through the real ingest writer and pipeline),
a segment of them, and a journey whose entry is a one-off broadcast to it with one email
step. Timed, pinned to one core: entering everyone (journeys.entries.run_broadcasts) and
delivering every message (Deliverer.drain: consent, caps, render, SMTP, status,
timeline event) into the sink. Baseline: the same rendered email written out
(email_bytes) and sent N times with raw smtplib over one connection to the same sink.
Target: 500 messages/s per worker core.
Results: benchmarks/results/journeys-<database>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import smtplib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import CORES, RESULTS, Databases, cpu_seconds, fill_events, free_port, machine
from shopkeeper.bootstrap import build_services, create_app, make_processor
from shopkeeper.clock import SystemClock
from shopkeeper.config import Settings
from shopkeeper.journeys import service as journeys
from shopkeeper.journeys.entries import run_broadcasts
from shopkeeper.messaging import template_store
from shopkeeper.messaging.channels.base import Delivered, Outgoing
from shopkeeper.messaging.channels.email import email_bytes
from shopkeeper.messaging.channels.registry import build_channels
from shopkeeper.messaging.delivery import Deliverer
from shopkeeper.segments import service as segments
from shopkeeper.storage import tables as t
from shopkeeper.storage.db import Database
from shopkeeper.timeutil import ms_to_iso

SERVER_CORE = CORES[0]
OTHER_CORE = CORES[-1]
LATENCY_TARGET_MS = 250.0
BROADCAST_TARGET = 500.0  # messages/s per worker core
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SENDER = "Nordic Home <news@nordic.example>"

EMAIL = {
    "subject": "{{ profile.first_name or 'Hello' }}, our spring collection is here",
    "text": "Hi {{ profile.first_name or 'there' }},\n\nNew jackets and tents at "
    "{{ shop.name }}: {{ link(shop.url ~ '/spring') }}\n\nUnsubscribe: {{ unsubscribe_url }}\n",
    "html": "<html><body><p>Hi {{ profile.first_name or 'there' }},</p><p>New jackets and "
    "tents at <a href=\"{{ link(shop.url ~ '/spring') }}\">{{ shop.name }}</a>.</p>"
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>',
}


def pin(core: int) -> Any:
    return lambda: os.sched_setaffinity(0, {core})


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def settings_for(url: str, smtp_port: int, **more: Any) -> Settings:
    return Settings(
        database_url=url, channel_email="smtp", smtp_host="127.0.0.1", smtp_port=smtp_port,
        email_from=SENDER, secret_key="benchmark-secret",  # noqa: S106 (signs links in a throwaway database) shop_name="Nordic Home",
        shop_url="https://shop.nordic.example", public_url="https://sk.nordic.example",
        # Measured at any hour: quiet hours would defer everything at night.
        quiet_hours_start=0, quiet_hours_end=0, **more,
    )  # fmt: skip


def people(count: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {"type": "identify", "userId": f"{prefix}-{i}", "messageId": f"{prefix}-id-{i}",
         "traits": {"email": f"{prefix}-{i}@example.com", "firstName": f"Kari{i}",
                    "consent": {"email": True}}}
        for i in range(count)
    ]  # fmt: skip


def load_people(url: str, count: int, prefix: str) -> float:
    """Known, consenting profiles through the real writer and pipeline; seconds taken."""
    fill_events(url, people(count, prefix))
    db = Database(url)
    started = time.perf_counter()
    try:
        make_processor(db, Settings(database_url=url), SystemClock(), None).drain()
        took = time.perf_counter() - started
        if not db.is_sqlite:
            # A shop's tables have been analyzed by autovacuum long before a broadcast;
            # here they were filled a moment ago, and stale statistics mean whole-table
            # scans.
            with db.write() as conn:
                conn.execute(sa.text("ANALYZE"))
    finally:
        db.dispose()
    return took


def source_key(url: str) -> str:
    """The write key of the source fill_events created."""
    db = Database(url)
    try:
        with db.read() as conn:
            return str(conn.execute(sa.select(t.sources.c.write_key).limit(1)).scalar_one())
    finally:
        db.dispose()


def save_journey(url: str, key: str, entry: dict[str, Any]) -> None:
    db = Database(url)
    now = SystemClock().now_ms()
    try:
        with db.write() as conn:
            template_store.save_template(conn, key, "email", "", EMAIL, now)
        definition = {
            "name": key,
            "entry": entry,
            "steps": [{"id": "send", "type": "send", "channel": "email", "template": key}],
        }
        journeys.create(db, now, actor="benchmark", key=key, definition=definition, status="active")
    finally:
        db.dispose()


class SmtpSink:
    """aiosmtpd in its own process on the other core, counting what it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--smtp-sink", str(self.port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=pin(OTHER_CORE),
        )  # fmt: skip
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def count(self) -> int:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def sink_main(port: int) -> None:
    from aiosmtpd.controller import Controller

    class Counter:
        accepted = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.accepted += 1
            return "250 OK"

    handler = Counter()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            print(handler.accepted, flush=True)
    controller.stop()


# -- latency ---------------------------------------------------------------------------------


class TimedChannel:
    """The email adapter, noting when delivery hands it each message."""

    def __init__(self, inner: Any, stamps: dict[str, float]) -> None:
        self.inner, self.stamps, self.name = inner, stamps, inner.name

    def send(self, message: Outgoing) -> Delivered:
        self.stamps[message.recipient.split("@", 1)[0]] = time.monotonic()
        return self.inner.send(message)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.inner.close()


class AppliedStamps:
    """A last pipeline hook noting when each event was applied (before its commit)."""

    def __init__(self, stamps: dict[str, float]) -> None:
        self.stamps = stamps

    def after_batch(self, conn: Any, changes: Any, now_ms: int) -> None:
        at = time.monotonic()
        for applied in changes.applied:
            self.stamps[applied.event.message_id] = at


async def generate(spec: dict[str, Any]) -> list[list[Any]]:
    """One track call per person, `rate` a second; [[person, sent, acknowledged]]."""
    rate, count = spec["rate"], spec["count"]
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    out: list[list[Any]] = []
    async with httpx.AsyncClient(
        base_url=spec["url"], auth=(spec["write_key"], ""), limits=limits, timeout=30
    ) as client:

        async def one(i: int) -> None:
            body = {"userId": f"lat-{i}", "event": "Signed Up", "messageId": f"lat-ev-{i}"}
            sent = time.monotonic()
            response = await client.post("/v1/track", json=body)
            if response.status_code == 200:
                out.append([i, sent, time.monotonic()])

        start = time.monotonic() + 0.2
        tasks = []
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return out


def bench_latency(dbs: Databases, rate: float, seconds: float, warmup: float) -> dict[str, Any]:
    count = int(rate * (seconds + warmup))
    url = dbs.create("latency")
    load_people(url, count, "lat")
    save_journey(url, "welcome", {"event": "Signed Up"})
    write_key = source_key(url)
    sink = SmtpSink()
    sent: dict[str, float] = {}
    applied: dict[str, float] = {}
    services = build_services(settings_for(url, sink.port), run_worker=True)
    assert services.deliverer is not None
    assert services.runner is not None
    services.deliverer.channels["email"] = TimedChannel(services.deliverer.channels["email"], sent)
    services.runner.processor.hooks.append(AppliedStamps(applied))

    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning",
                       loop="uvloop", http="httptools", access_log=False)
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    # The scheduler's first round (segment refreshes, RFM, lead scores) runs at start-up
    # in this process: let it pass, the load is meant to be steady.
    time.sleep(3.0)
    spec = {"url": f"http://127.0.0.1:{port}", "write_key": write_key, "rate": rate, "count": count}
    generator = subprocess.run(
        [sys.executable, __file__, "--loadgen", json.dumps(spec)],
        capture_output=True, text=True, check=True, preexec_fn=pin(OTHER_CORE),
    )  # fmt: skip
    acks = json.loads(generator.stdout)
    deadline = time.monotonic() + 60
    while len(sent) < len(acks) and time.monotonic() < deadline:
        time.sleep(0.05)
    server.should_exit = True
    thread.join(timeout=60)
    delivered = sink.count()
    sink.close()
    services.db.dispose()
    measured = [a for a in acks if a[0] >= rate * warmup]
    ack_ms = [(ack - start) * 1000 for _i, start, ack in measured]
    apply_ms = [(applied[f"lat-ev-{i}"] - ack) * 1000 for i, _s, ack in measured]
    send_ms = [(sent[f"lat-{i}"] - ack) * 1000 for i, _s, ack in measured if f"lat-{i}" in sent]
    return {
        "events": len(measured),
        "rate_per_s": rate,
        "acknowledged": len(acks),
        "handed_to_channel": len(sent),
        "accepted_by_sink": delivered,
        "ack_p50_ms": quantile(ack_ms, 0.5),
        "ack_p99_ms": quantile(ack_ms, 0.99),
        "applied_p50_ms": quantile(apply_ms, 0.5),
        "applied_p99_ms": quantile(apply_ms, 0.99),
        "send_p50_ms": quantile(send_ms, 0.5),
        "send_p99_ms": quantile(send_ms, 0.99),
        "send_max_ms": max(send_ms, default=0.0),
    }


# -- broadcast -------------------------------------------------------------------------------


def smtplib_baseline(url: str, port: int, count: int) -> float:
    """Messages/s of raw smtplib sending one rendered email of this run, one connection."""
    db = Database(url)
    with db.read() as conn:
        row = conn.execute(
            sa.select(t.messages).where(t.messages.c.status == "sent").limit(1)
        ).one()
    db.dispose()
    outgoing = Outgoing(row.id, row.idempotency_key, "email", row.recipient, row.content,
                        unsubscribe_url="https://sk.nordic.example/u/x")  # fmt: skip
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for _ in range(count):
            data = email_bytes(outgoing, SENDER, sent_at_s=time.time())
            smtp.sendmail("news@nordic.example", [row.recipient], data)
    return count / (time.perf_counter() - started)


def bench_broadcast(dbs: Databases, profiles: int, profile_run: bool) -> dict[str, Any]:
    url = dbs.create("broadcast")
    print(f"  {dbs.kind}: loading {profiles:,} profiles", flush=True)
    load_seconds = load_people(url, profiles, "bc")
    db = Database(url)
    now = SystemClock().now_ms()
    segments.create(db, now, actor="benchmark", key="newsletter", name="Newsletter",
                    condition="email is set and consent.email")  # fmt: skip
    save_journey(url, "spring", {"broadcast": "newsletter", "at": ms_to_iso(now - 1000)})
    sink = SmtpSink()
    settings = settings_for(url, sink.port)
    deliverer = Deliverer(db, settings, build_channels(settings), SystemClock())
    postgres = {pid: cpu_seconds(pid) for pid in dbs.backend_pids()}
    cpu_start = time.process_time()
    started = time.perf_counter()
    entered = run_broadcasts(db, settings, SystemClock().now_ms())
    entered_at = time.perf_counter()
    profiler = cProfile.Profile() if profile_run else None
    if profiler is not None:
        profiler.enable()
    delivered = deliverer.drain()
    if profiler is not None:
        profiler.disable()
    finished = time.perf_counter()
    cpu = time.process_time() - cpu_start
    pg_cpu = sum((cpu_seconds(pid) or 0.0) - (before or 0.0) for pid, before in postgres.items())
    for channel in deliverer.channels.values():
        channel.close()
    with db.read() as conn:
        statuses = dict(
            conn.execute(
                sa.select(t.messages.c.status, sa.func.count()).group_by(t.messages.c.status)
            ).all()
        )
    db.dispose()
    accepted = sink.count()
    baseline = smtplib_baseline(url, sink.port, min(profiles, 20_000))
    sink.close()
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
        (RESULTS / f"journeys-broadcast-{dbs.kind}.prof.txt").write_text(out.getvalue())
    total = finished - started
    return {
        "profiles": profiles,
        "load_seconds": round(load_seconds, 2),
        "entered": entered,
        "delivered": delivered,
        "statuses": statuses,
        "accepted_by_sink": accepted,
        "enter_seconds": round(entered_at - started, 2),
        "deliver_seconds": round(finished - entered_at, 2),
        "messages_per_s": round(profiles / total, 1),
        "deliver_messages_per_s": round(delivered / (finished - entered_at), 1),
        "enter_ms_per_person": round((entered_at - started) * 1000 / max(entered, 1), 2),
        "deliver_ms_per_message": round((finished - entered_at) * 1000 / max(delivered, 1), 2),
        "worker_cpu_share": round(cpu / total, 2),
        "postgres_cpu_seconds": round(pg_cpu, 1),
        "baseline_smtplib_per_s": round(baseline, 1),
    }


# -- the run ---------------------------------------------------------------------------------


def run(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    dbs = Databases(kind, args.postgres_url)
    result: dict[str, Any] = {"database": kind, "machine": machine()}
    try:
        if not args.skip_latency:
            print(f"  {kind}: latency, {args.rate:g} events/s for {args.seconds:g} s", flush=True)
            result["latency"] = bench_latency(dbs, args.rate, args.seconds, args.warmup)
        if not args.skip_broadcast:
            result["broadcast"] = bench_broadcast(dbs, args.profiles, args.cprofile)
    finally:
        dbs.close()
    return result


def report(results: list[dict[str, Any]]) -> None:
    print()
    print(f"{'latency':<11} {'events':>6} {'ack p50':>8} {'ack p99':>8} {'applied p50':>11} "
          f"{'applied p99':>11} {'send p50':>9} {'send p99':>9} {'target':>7}")  # fmt: skip
    for r in results:
        if (lat := r.get("latency")) is not None:
            ok = "met" if lat["send_p99_ms"] < LATENCY_TARGET_MS else "MISSED"
            print(f"{r['database']:<11} {lat['events']:>6} {lat['ack_p50_ms']:>6.1f}ms "
                  f"{lat['ack_p99_ms']:>6.1f}ms {lat['applied_p50_ms']:>9.1f}ms "
                  f"{lat['applied_p99_ms']:>9.1f}ms {lat['send_p50_ms']:>7.1f}ms "
                  f"{lat['send_p99_ms']:>7.1f}ms {ok:>7}")  # fmt: skip
    print()
    print(f"{'broadcast':<11} {'profiles':>8} {'enter s':>8} {'deliver s':>9} {'msg/s':>7} "
          f"{'smtplib/s':>9} {'ratio':>6} {'pg cpu s':>8} {'target':>7}")  # fmt: skip
    for r in results:
        if (bc := r.get("broadcast")) is not None:
            ok = "met" if bc["messages_per_s"] >= BROADCAST_TARGET else "MISSED"
            ratio = bc["messages_per_s"] / bc["baseline_smtplib_per_s"]
            print(f"{r['database']:<11} {bc['profiles']:>8} {bc['enter_seconds']:>8.1f} "
                  f"{bc['deliver_seconds']:>9.1f} {bc['messages_per_s']:>7.0f} "
                  f"{bc['baseline_smtplib_per_s']:>9.0f} {ratio:>6.2f} "
                  f"{bc['postgres_cpu_seconds']:>8.1f} {ok:>7}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("SHOPKEEPER_TEST_DATABASE_URL", DEFAULT_PG_URL)
    )
    parser.add_argument("--rate", type=float, default=50.0, help="events/s for the latency run")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-broadcast", action="store_true")
    parser.add_argument("--cprofile", action="store_true", help="profile broadcast delivery")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)
    parser.add_argument("--smtp-sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        print(json.dumps(asyncio.run(generate(json.loads(args.loadgen)))))
        return 0
    if args.smtp_sink:
        sink_main(args.smtp_sink)
        return 0
    info = machine()
    print(
        f"{info['cpu']}, {info['cores']} cores, Python {info['python']}; worker on core "
        f"{SERVER_CORE}, generator and SMTP sink on core {OTHER_CORE}; load average "
        f"{', '.join(f'{x:.2f}' for x in info['load_average'])}"
    )
    os.sched_setaffinity(0, {SERVER_CORE})  # threads started from here inherit it
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    results = []
    for kind in kinds:
        result = run(kind, args)
        results.append(result)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"journeys-{kind}.json").write_text(json.dumps(result, indent=2))
    report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
