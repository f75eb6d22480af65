"""``parley import FILE``: a backlog of complaints into ``complaint.received``.

Formats (``--format``, default from the file's extension):

* ``jsonl``: one ``ComplaintSubmission`` JSON object a line.
* ``csv`` with a header ("schema" CSV): the submission's top-level fields as columns
  (``channel_complaint_id, channel, received_at, product, text, language, amount_disputed,
  amount_demanded, demand, matter_ref, about_case_number, new_facts``), the customer's as
  ``customer_id, customer_name, customer_phone, customer_id_number, customer_vulnerable``
  (``customer.name`` etc. work too) and ``attachments`` as JSON text; empty cells are absent.
* ``csv`` without a header, ``text,label`` (the shared data's 黑猫投诉 files,
  ``../shared/data/complaints-zh/*.csv``): the text becomes a complaint from a customer whose
  id is derived like the complaint id (below), on ``--channel`` (default web), received now,
  the product guessed from keywords (as bench/data.py does); the label is not used.

Every row is validated with ``ComplaintSubmission``; a bad row is reported with its line
number and field and written to the rejects file (JSON lines: line, errors, the row as read).
A row without ``channel_complaint_id`` gets one derived from the file's name and the row's
first line (``IMP-<name>-<hash of name>-L<line>``), so a re-run sends the same ids and intake,
which dedupes by ``<channel>:<channel_complaint_id>``, registers each once. A ledger under
``var/imports/`` records the keys whose publication the broker acknowledged (per cluster,
topic and file name), so a re-run does not even publish them again (``--republish`` does).
"""

# ruff: noqa: B008 - typer declares options as argument defaults
from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from deploy.cli.common import CliError, api_url, console, err_console, fail, kafka_settings, var_dir

RECEIVED = "complaint.received"
CSV_CUSTOMER = {"customer_id": "customer_id", "customer_name": "name", "customer_phone": "phone",
                "customer_id_number": "id_number", "customer_vulnerable": "vulnerable"}
BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


class Format(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


class Via(StrEnum):
    kafka = "kafka"
    http = "http"


# ------------------------------------------------------------------ reading


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:24] or "import"


def id_tag(path: Path) -> str:
    """The file part of derived ids: a readable slug and a hash of the whole file name."""
    return f"{_slug(path.stem)}-{hashlib.sha256(path.name.encode()).hexdigest()[:6]}"


def derived_id(path: Path, line: int) -> str:
    return f"IMP-{id_tag(path)}-L{line}"


def zh_product(text: str) -> str:
    for words, product in (
        (("信用卡", "年费", "刷卡"), "credit_card"),
        (("保险", "保单", "理赔"), "insurance"),
        (("分期",), "instalment"),
        (("理财", "基金"), "wealth"),
        (("支付", "扣款", "花呗", "转账"), "payments"),
        (("借", "贷", "还款", "逾期", "催收"), "consumer_loan"),
    ):
        if any(w in text for w in words):
            return product
    return "other"


@dataclass
class Row:
    line: int  # the row's first physical line (1-based)
    raw: Any  # as read: a dict (jsonl, schema csv) or a list (text,label csv)
    doc: dict[str, Any] | None = None  # the submission to validate
    problem: list[dict[str, str]] | None = None  # a problem found before validation


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        start = 1
        for cells in reader:
            yield start, cells
            start = reader.line_num + 1


def _cell_value(name: str, text: str) -> Any:
    if name in ("customer_vulnerable", "customer.vulnerable", "new_facts"):
        return BOOLS.get(text.strip().lower(), text)
    if name == "attachments":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _schema_doc(header: list[str], cells: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    customer: dict[str, Any] = {}
    for name, text in zip(header, cells, strict=False):
        if text == "":
            continue
        value = _cell_value(name, text)
        if name.startswith("customer."):
            customer[name.split(".", 1)[1]] = value
        elif name in CSV_CUSTOMER:
            customer[CSV_CUSTOMER[name]] = value
        else:
            doc[name] = value
    if customer:
        doc["customer"] = customer
    return doc


def read_rows(path: Path, fmt: Format, *, channel: str, received_at: str) -> Iterator[Row]:
    """Every row of the file with the submission it becomes (not validated yet)."""
    if fmt is Format.jsonl:
        with path.open(encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except ValueError as exc:
                    yield Row(n, line.rstrip("\n"), problem=[{"field": "(line)", "problem": f"not JSON: {exc}"}])
                    continue
                if not isinstance(doc, dict):
                    yield Row(n, doc, problem=[{"field": "(root)", "problem": "must be a JSON object"}])
                    continue
                if not doc.get("channel_complaint_id"):
                    doc["channel_complaint_id"] = derived_id(path, n)
                yield Row(n, doc, doc)
        return
    rows = _csv_rows(path)
    first = next(rows, None)
    if first is None:
        return
    _, head = first
    names = [h.strip() for h in head]
    if "text" in names:  # a "schema" CSV with a header
        for n, cells in rows:
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(names):
                yield Row(n, cells, problem=[{"field": "(row)", "problem": f"{len(cells)} cells, the header has {len(names)}"}])
                continue
            doc = _schema_doc(names, cells)
            doc.setdefault("channel_complaint_id", derived_id(path, n))
            yield Row(n, dict(zip(names, cells, strict=False)), doc)
        return
    # the shared data's text,label rows (no header)
    for n, cells in [first, *rows]:
        if not cells or not any(c.strip() for c in cells):
            continue
        text = cells[0]
        ident = derived_id(path, n)
        doc = {"channel_complaint_id": ident, "channel": channel, "received_at": received_at,
               "customer": {"customer_id": "C" + ident}, "product": zh_product(text), "text": text}
        yield Row(n, cells, doc)


def validate(row: Row) -> tuple[Any | None, list[dict[str, str]]]:
    """The ``ComplaintSubmission`` of a row, or its problems (field and problem, no values)."""
    from pydantic import ValidationError

    from shared.contracts.intake import ComplaintSubmission
    from shared.topics import validation_errors

    if row.problem:
        return None, row.problem
    try:
        return ComplaintSubmission.model_validate(row.doc), []
    except ValidationError as exc:
        return None, validation_errors(exc)


# ------------------------------------------------------------------ the ledger


class Ledger:
    """Keys whose publication was acknowledged, for one cluster, topic and file name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: set[str] = set()
        if path.exists():
            self.keys = {k for k in path.read_text(encoding="utf-8").splitlines() if k}

    @classmethod
    def for_import(cls, file: Path, destination: str) -> Ledger:
        digest = hashlib.sha256(f"{destination}|{file.name}".encode()).hexdigest()[:16]
        return cls(var_dir() / "imports" / f"{_slug(file.stem)}-{digest}.keys")

    def add(self, keys: list[str]) -> None:
        if not keys:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(k + "\n" for k in keys))
            fh.flush()
            os.fsync(fh.fileno())
        self.keys.update(keys)


# ------------------------------------------------------------------ sending


@dataclass
class Outcome:
    total: int = 0
    published: int = 0
    skipped: int = 0  # already in the ledger
    rejected: int = 0
    before_from_line: int = 0
    last_line: int = 0  # every row up to here has been dealt with
    http_statuses: dict[str, int] = field(default_factory=dict)


class KafkaSink:
    def __init__(self) -> None:
        self.settings = kafka_settings()
        self.destination = f"kafka|{self.settings.bootstrap}|{self.settings.topic(RECEIVED)}"
        self._producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaConnectionError

        from deploy.cli.common import kafka_down

        p = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap, client_id="parley-import", acks="all",
                             enable_idempotence=True, linger_ms=20, compression_type="gzip",
                             max_request_size=8 * 1024 * 1024, request_timeout_ms=30_000)
        try:
            await p.start()
        except KafkaConnectionError:
            await p.stop()
            raise kafka_down(self.settings.bootstrap) from None
        topics = await p.client.fetch_all_metadata()
        if self.settings.topic(RECEIVED) not in topics.topics():
            await p.stop()
            raise CliError(f"topic {self.settings.topic(RECEIVED)} does not exist at {self.settings.bootstrap} — "
                           "`parley services up` creates the topics and starts intake")
        self._producer = p

    async def send(self, batch: list[tuple[str, bytes]], out: Outcome) -> None:
        topic = self.settings.topic(RECEIVED)
        futures = [await self._producer.send(topic, key=k.encode(), value=v) for k, v in batch]
        await asyncio.gather(*futures)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


class HttpSink:
    """``POST /complaints`` on intake's API with a development channel token."""

    def __init__(self) -> None:
        self.base = api_url("intake")
        self.destination = f"http|{self.base}"
        self.token = ""

    async def start(self) -> None:
        from datetime import timedelta

        from shared.auth.tokens import mint
        from shared.settings import CommonSettings

        self.token = os.environ.get("PARLEY_TOKEN") or ""
        if not self.token:
            common = CommonSettings()
            if common.environment == "production" or common.auth.algorithm != "HS256":
                raise CliError("set PARLEY_TOKEN to a channel token: this deployment takes no development tokens")
            self.token = mint(common.auth, sub="parley-import", role="channel", ttl=timedelta(hours=8))

    def _post(self, value: bytes) -> int:
        import urllib.error
        import urllib.request

        req = urllib.request.Request(f"{self.base}/complaints", data=value, method="POST", headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, OSError):
            raise CliError(f"the intake API does not answer at {self.base} — start it with "
                           "`parley services up`, or set PARLEY_INTAKE_URL") from None

    async def send(self, batch: list[tuple[str, bytes]], out: Outcome) -> None:
        codes = await asyncio.gather(*(asyncio.to_thread(self._post, v) for _, v in batch))
        for code in codes:
            out.http_statuses[str(code)] = out.http_statuses.get(str(code), 0) + 1
        bad = [c for c in codes if c >= 300]
        if bad:
            raise CliError(f"the intake API answered {sorted(set(bad))} to {len(bad)} of {len(batch)} rows")

    async def stop(self) -> None:
        pass


def _rejects_line(row: Row, errors: list[dict[str, str]]) -> str:
    return json.dumps({"line": row.line, "errors": errors, "row": row.raw}, ensure_ascii=False) + "\n"


async def run_import(path: Path, fmt: Format, *, rejects: Path, via: Via, from_line: int, channel: str,
                     batch_size: int, republish: bool, out: Outcome, quiet: bool = False) -> Outcome:
    received_at = datetime.now(UTC).replace(microsecond=0).isoformat()
    rows = list(read_rows(path, fmt, channel=channel, received_at=received_at))
    out.total = len(rows)
    sink: KafkaSink | HttpSink = KafkaSink() if via is Via.kafka else HttpSink()
    ledger = Ledger.for_import(path, sink.destination)
    await sink.start()
    rejects.parent.mkdir(parents=True, exist_ok=True)
    progress = Progress(TextColumn("[bold]import[/]"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                        TextColumn("{task.fields[rate]:>7} rows/s"), TextColumn("ETA"), TimeRemainingColumn(),
                        console=err_console, disable=quiet, transient=False)
    started = time.monotonic()
    try:
        with progress, rejects.open("a" if from_line > 1 else "w", encoding="utf-8") as rej:
            task = progress.add_task("import", total=len(rows), rate="-")
            pending: list[tuple[str, bytes, str]] = []  # (Kafka key, value, idempotency key)

            async def flush(upto: int) -> None:
                if pending:
                    await sink.send([(k, v) for k, v, _ in pending], out)
                    ledger.add([key for _, _, key in pending])
                    out.published += len(pending)
                    progress.advance(task, len(pending))
                    pending.clear()
                out.last_line = upto
                rate = (out.published + out.skipped + out.rejected) / max(time.monotonic() - started, 1e-6)
                progress.update(task, rate=f"{rate:.0f}")

            out.last_line = from_line - 1
            for row in rows:
                if row.line < from_line:
                    out.before_from_line += 1
                    progress.advance(task)
                    continue
                sub, errors = validate(row)
                if sub is None:
                    out.rejected += 1
                    rej.write(_rejects_line(row, errors))
                    rej.flush()
                    if not quiet:
                        where = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:3])
                        progress.console.print(f"[yellow]line {row.line}[/]: {where}", soft_wrap=True)
                    progress.advance(task)
                elif not republish and sub.key() in ledger.keys:
                    out.skipped += 1
                    progress.advance(task)
                else:
                    value = json.dumps(sub.model_dump(mode="json", exclude_none=True), ensure_ascii=False).encode()
                    pending.append((sub.channel_complaint_id, value, sub.key()))
                if not pending:
                    out.last_line = row.line  # everything up to this row is done
                elif len(pending) >= batch_size:
                    await flush(row.line)
            await flush(rows[-1].line if rows else out.last_line)
    finally:
        await sink.stop()
    return out


def import_(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="the backlog: .csv or .jsonl"),
    fmt: Format | None = typer.Option(None, "--format", help="csv or jsonl (default: from the file's extension)"),
    rejects: Path | None = typer.Option(None, "--rejects", help="where bad rows go (default: var/imports/<file>.rejects.jsonl)"),
    via: Via = typer.Option(Via.kafka, "--via", help="kafka: publish to complaint.received; http: POST /complaints"),
    from_line: int = typer.Option(1, "--from-line", min=1, help="skip rows that start before this line (resume)"),
    channel: str = typer.Option("web", "--channel", help="channel of rows that name none (text,label CSV)"),
    batch: int = typer.Option(200, "--batch", min=1, max=10_000, help="rows sent before waiting for the broker"),
    republish: bool = typer.Option(False, "--republish", help="send rows the ledger says were published already"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar, no per-row messages"),
) -> None:
    """Import a backlog of complaints: validated row by row, idempotent on re-run."""
    if fmt is None:
        suffix = file.suffix.lower()
        if suffix in (".jsonl", ".ndjson", ".json"):
            fmt = Format.jsonl
        elif suffix in (".csv", ".tsv"):
            fmt = Format.csv
        else:
            raise typer.BadParameter("cannot tell the format from the extension: give --format csv|jsonl",
                                     param_hint="--format")
    rejects = rejects or var_dir() / "imports" / f"{file.name}.rejects.jsonl"
    out = Outcome()
    try:
        asyncio.run(run_import(file, fmt, rejects=rejects, via=via, from_line=from_line, channel=channel,
                               batch_size=batch, republish=republish, out=out, quiet=quiet))
    except KeyboardInterrupt:
        resume = out.last_line + 1
        err_console.print(f"\n[bold]stopped[/]: rows before line {resume} are done ({out.published} published, "
                          f"{out.rejected} rejected). Resume with:\n  parley import {file} --from-line {resume}"
                          f"{' --via http' if via is Via.http else ''}\n(a plain re-run also works: rows already "
                          "published are skipped.)", soft_wrap=True)
        raise typer.Exit(130) from None
    except CliError as exc:
        resume = out.last_line + 1
        hint = f" Rows before line {resume} are done; resume with --from-line {resume}." if out.published else ""
        fail(f"{exc}{hint}")
    console.print(f"{out.total} rows: {out.published} published, {out.skipped} already published before, "
                  f"{out.rejected} rejected" + (f", {out.before_from_line} before --from-line" if out.before_from_line else "")
                  + (f"; HTTP {out.http_statuses}" if out.http_statuses else ""), soft_wrap=True)
    if out.rejected:
        console.print(f"Bad rows (line, field, problem) are in {rejects}; fix them and import that file again.", soft_wrap=True)
    if out.published:
        console.print("Intake registers them: `parley cases search` shows the cases.", soft_wrap=True)
    if out.rejected and not out.published and not out.skipped:
        raise typer.Exit(1)
