"""``parley simulate``: a month of a complaint desk in minutes (what ``make demo`` runs).

1. the stack (``parley stack up``); 2. every service as its own process, started with one
accelerated clock (``PARLEY_CLOCK_START/SPEED/ANCHOR``: ``shared.clock.AcceleratedClock``,
the clock ``utcnow()`` reads in every service) and short timer intervals so deadline sweeps
run several times a simulated day; 3. the month (``deploy.cli.simulation``): real complaints
arrive through Kafka and intake's API, simulated agents, customers and operations staff act
through the APIs, with a progress bar; Ctrl-C stops it cleanly; 4. the evaluation report
(``deploy.cli.report``, read from the APIs) printed and written to ``var/reports/`` — after
the services were restarted at real speed from where the simulated clock stood, so the
numbers stay what the API says —, and where to look next.
"""

# ruff: noqa: B008 - typer declares options as argument defaults
from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from deploy.cli.common import REPO, CliError, api_url, console, err_console, fail, var_dir
from shared.clock import AcceleratedClock, as_utc, beijing_day, end_of_day, set_clock

#: Simulated seconds per real second by default: a 30-day month in five minutes.
DEFAULT_SPEED = 30 * 86400 / 300
#: Where the first simulation starts when none ran before (a Monday, 09:00 Beijing).
FIRST_START = "2026-03-02T09:00:00+08:00"
#: Timer intervals (seconds, real) the services get during a simulation unless set already:
#: at the default speed 2 s is ~5 simulated hours, so deadline sweeps, warnings, escalations
#: and overdue steps happen within the month.
TIMER_OVERRIDES = {
    "PARLEY_SUPERVISION_SWEEP_INTERVAL_S": "2",
    "PARLEY_NEGOTIATION_SWEEP_INTERVAL_S": "2",
    "PARLEY_FOLLOWUP_SWEEP_INTERVAL_S": "2",
    "PARLEY_INVESTIGATION_SWEEP_INTERVAL_S": "2",
    "PARLEY_SUPERVISION_LAG_INTERVAL_S": "10",
}


def _state_file() -> Any:
    return var_dir() / "simulations" / "last.json"


def default_start() -> datetime:
    """A day after the last simulation's end (so two runs' months do not overlap in the
    report), else ``FIRST_START``."""
    try:
        last = json.loads(_state_file().read_text())
        return datetime.fromisoformat(last["end"]) + timedelta(days=1)
    except (OSError, ValueError, KeyError):
        return datetime.fromisoformat(FIRST_START)


def services_env(clock: AcceleratedClock) -> dict[str, str]:
    """The environment the service processes are started with: the clock, short timers."""
    env = dict(os.environ, **clock.env())
    for name, value in TIMER_OVERRIDES.items():
        env.setdefault(name, value)
    return env


def restart_services(clock: AcceleratedClock | None, workers: int | None, *, quiet: bool = False) -> None:
    """Stop the service processes and start them again on ``clock`` (``None``: on a clock at
    real speed from where ``current_clock()`` stands once they have stopped). ``quiet``: their
    output only if something fails."""
    from shared.clock import current_clock

    capture = {"capture_output": True, "text": True} if quiet else {}
    env = dict(os.environ)
    stopped = subprocess.run([sys.executable, "-m", "deploy.local.services", "stop"], cwd=REPO, env=env,
                             check=False, **capture)  # type: ignore[call-overload]
    if clock is None:
        clock = AcceleratedClock(current_clock().now(), 1)
    extra = ["--workers", str(workers)] if workers else []
    started = subprocess.run([sys.executable, "-m", "deploy.local.services", "start", *extra], cwd=REPO,
                             env=services_env(clock), check=False, **capture)  # type: ignore[call-overload]
    if started.returncode:
        if quiet:
            err_console.print((stopped.stdout or "") + (started.stdout or "") + (started.stderr or ""))
        fail("a service did not start: its log is named above (.parley/run/); `parley stack status` "
             "shows whether the servers run")


async def _month(clock: AcceleratedClock, *, n: int, lang: str, days: float, seed: int, run_id: str,
                 concurrency: int) -> tuple[datetime, datetime, Any, bool]:
    import httpx

    from deploy.cli.backlog import KafkaSink
    from deploy.cli.report import SERVICES
    from deploy.cli.simulation import Apis, Policy, Simulation, plan

    policy = Policy()
    begin = clock.now()
    end = begin + timedelta(days=days)
    cases = plan(n=n, lang=lang, start=begin, days=days, seed=seed, run=run_id, policy=policy)
    sink = KafkaSink()
    await sink.start()
    urls = {s: api_url(s) for s in SERVICES}
    interrupted = False
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            sim = Simulation(clock=clock, apis=Apis(urls, client), complaints=cases, end=end, policy=policy,
                             rng=random.Random(seed + 1),
                             send_kafka=lambda k, v: sink.send([(k, v)], None),  # type: ignore[arg-type]
                             concurrency=concurrency)
            await sim.setup()
            loop = asyncio.get_running_loop()

            def stop() -> None:
                nonlocal interrupted
                interrupted = True
                sim.stopping.set()
                loop.remove_signal_handler(signal.SIGINT)  # a second Ctrl-C ends it at once

            loop.add_signal_handler(signal.SIGINT, stop)
            started = time.monotonic()
            progress = Progress(
                TextColumn("[bold]simulate[/]"), BarColumn(), TaskProgressColumn(),
                TextColumn("{task.fields[day]}"), TextColumn("{task.fields[count]}"),
                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console)
            total = (end - begin).total_seconds()

            printed = [0]

            def tick(now: datetime, tally: Any) -> None:
                elapsed = time.monotonic() - started
                done = min((now - begin).total_seconds(), total)
                fields = {"day": f"day {(now - begin) / timedelta(days=1):4.1f}/{days:g}",
                          "count": f"{tally.submitted}/{len(cases)} complaints, "
                                   f"{sum(tally.actions.values())} actions",
                          "rate": f"{tally.submitted / elapsed:.1f} complaints/s" if elapsed > 0 else ""}
                progress.update(task, completed=done, **fields)
                if not console.is_terminal and int(10 * done / total) > printed[0]:  # a log, not a terminal
                    printed[0] = int(10 * done / total)
                    eta = elapsed * (total - done) / done if done else 0
                    console.print(f"simulate {10 * printed[0]:3d}%  {fields['day']}  {fields['count']}  "
                                  f"{fields['rate']}  ETA {eta:.0f}s")

            with progress:
                task = progress.add_task("month", total=total, day="", count="", rate="")
                await sim.run(tick)
            if interrupted:
                console.print("[yellow]stopped by Ctrl-C[/]: the report covers what happened so far")
            tally = sim.tally
    finally:
        await sink.stop()
    return begin, (clock.now() if interrupted else end), tally, interrupted


async def settle(most: float = 90.0) -> int | None:
    """Wait until every service's consumer group has read everything (supervision's
    ``GET /lag``: total lag 0, twice in a row) or ``most`` seconds passed; the last lag seen."""
    import httpx

    from deploy.cli.simulation import Apis

    lag: int | None = None
    calm = 0
    deadline = time.monotonic() + most
    async with httpx.AsyncClient(timeout=30) as client:
        apis = Apis({"supervision": api_url("supervision")}, client)
        while time.monotonic() < deadline:
            status, body = await apis.call("GET", "supervision", "/lag", apis.token("ops", "parley-simulate"))
            if status == 200:
                lag = sum(int(g.get("lag") or 0) for g in body.get("groups") or [])
                calm = calm + 1 if lag == 0 else 0
                if calm >= 2:
                    break
            await asyncio.sleep(2)
    return lag


def simulate(
    complaints: int = typer.Option(500, "--complaints", "-n", min=1, help="how many real complaints arrive"),
    lang: str = typer.Option("zh", "--lang", help="zh (黑猫投诉), en (CFPB) or mixed"),
    speed: float = typer.Option(DEFAULT_SPEED, "--speed", min=1,
                                help="simulated seconds per real second (default 8640: 30 days in 5 minutes)"),
    days: float = typer.Option(30, "--days", min=1, help="simulated days; complaints arrive in the first two thirds"),
    start: str = typer.Option("", "--start", help="where the simulated clock starts (ISO with offset; default: "
                              f"a day after the last simulation, first {FIRST_START})"),
    seed: int = typer.Option(14, "--seed", help="random seed of texts, arrivals and choices"),
    workers: int = typer.Option(None, "--workers", "-w", min=1, help="worker processes per service"),
    concurrency: int = typer.Option(8, "--concurrency", min=1, help="API calls in flight at once"),
    skip_stack: bool = typer.Option(False, "--no-stack", help="do not run `parley stack up` first"),
    keep_speed: bool = typer.Option(False, "--keep-speed",
                                    help="leave the services on the accelerated clock afterwards"),
) -> None:
    """A month of the complaint desk in minutes: the stack, every service on one accelerated
    clock, N real complaints through Kafka and HTTP, simulated agents and customers acting
    through the APIs, then the evaluation report (var/reports/) and the console's address."""
    if lang not in ("zh", "en", "mixed"):
        raise typer.BadParameter("must be zh, en or mixed", param_hint="--lang")
    try:
        begin_at = as_utc(datetime.fromisoformat(start)) if start else default_start()
    except ValueError:
        raise typer.BadParameter("expected ISO-8601 with an offset, e.g. 2026-03-02T09:00:00+08:00",
                                 param_hint="--start") from None
    from deploy.cli.stack import stack

    console.rule("1. stack 服务器 (Kafka, PostgreSQL, FerretDB)")
    if not skip_stack and (stack("install") or stack("start")):
        fail("the servers did not start: `parley stack status` and `python3 deploy/local/stack.py logs kafka` "
             "(or ferretdb, postgresql) say why")

    console.rule("2. services 服务 (each its own process, on the simulated clock)")
    clock = AcceleratedClock(begin_at, speed)
    console.print(f"clock: {clock!r}; one real second = {speed / 3600:.1f} simulated hours")
    restart_services(clock, workers)
    set_clock(clock)  # this process reads the same clock as the services

    console.rule(f"3. simulation 模拟: {complaints} complaints ({lang}) over {days:g} simulated days")
    run_id = time.strftime("%m%d%H%M")
    try:
        begin, end, tally, interrupted = asyncio.run(
            _month(clock, n=complaints, lang=lang, days=days, seed=seed, run_id=run_id, concurrency=concurrency))
    except CliError as exc:
        fail(str(exc))
    for what, count in sorted(tally.actions.items()):
        console.print(f"  {what}: {count}")
    for what, count in sorted(tally.errors.items()):
        err_console.print(f"  [yellow]trouble[/] {what}: {count}")
    if not keep_speed:
        # time stands (nearly) still from here: the report's numbers stay what the API says
        restart_services(None, workers, quiet=True)
        console.print("services restarted at real speed from the simulated end "
                      "(`--keep-speed` leaves them accelerated)")

    console.rule("4. report 评估报告 (numbers read from the services' APIs)")
    from deploy.cli.report import evaluate, show, write

    asyncio.run(settle())  # the last events reach every service before the numbers are read
    first_day, after_day = beijing_day(begin), beijing_day(end) + timedelta(days=1)
    ev = asyncio.run(evaluate(end_of_day(first_day - timedelta(days=1)) + timedelta(microseconds=1),
                              end_of_day(after_day - timedelta(days=1)) + timedelta(microseconds=1)))
    show(ev)
    console_url = api_url("supervision") + "/console"
    paths = write(ev, stem=f"simulation-{run_id}", console_url=console_url)
    state = _state_file()
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"run": run_id, "begin": begin.isoformat(), "end": end.isoformat(),
                                 "speed": speed, "complaints": complaints, "interrupted": interrupted,
                                 "reports": [str(p) for p in paths], "headline": ev.headline}, indent=1))

    console.rule("where to look next 下一步")
    for path in paths:
        console.print(f"report: {path}")
    console.print(f"operations console: {console_url}  (sign in with `parley token --role ops --sub me`)")
    console.print(f"the same numbers again: parley report --from {first_day} --to {after_day} --html")
    console.print("cases: `parley cases search`; dead letters: `parley dlq list`; stop everything: `make stop`")
    if interrupted:
        raise typer.Exit(130)
