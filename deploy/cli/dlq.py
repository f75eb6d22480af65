"""``parley dlq list|show|replay``: dead letters, read straight from the ``.dlq`` topics.

What is printed: the reason headers, the key and sizes — never the value (it is the raw
input and may carry personal data) unless ``--show-value``.

**Replay** (its core is ``shared.kafka.replay``, shared with supervision's console) re-publishes the original key and value bytes (and, for a body kept in the
database, its original headers) to the source topic, with a header ``replayed_from`` =
``<dlq topic>:<partition>:<offset>`` (logical topic name). It is idempotent, decided by the
source topic itself: before sending, the source topic is read from the dead letter's
timestamp on (a replay cannot be older than its dead letter) for a record carrying that
``replayed_from``; if one is there, nothing is sent. A small record file
(``var/dlq-replays.json``) remembers replays made from this machine so a repeat answers
without reading the topic; it is a cache, the topic is the truth (a lost file, or a replay
from another machine, is still found). Two replays of one dead letter started at the same
moment can both send; that is the one gap (consumers dedupe, e.g. intake by complaint id).
"""

# ruff: noqa: B008 - typer declares options as argument defaults
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from deploy.cli.common import CliError, console, kafka_settings, mongo_settings, run, var_dir
from deploy.cli.kafka import consumer, producer, read_all, read_one
from shared.kafka.replay import DLQ_SUFFIX, logical_dlq

app = typer.Typer(help="Dead letters: what a consumer could not process, with the reason.",
                  no_args_is_help=True)


def replay_file() -> Path:
    return Path(os.environ.get("PARLEY_DLQ_REPLAYS") or var_dir() / "dlq-replays.json")


def headers_of(record: Any) -> dict[str, str]:
    from shared.kafka.dlq import read_headers

    return read_headers(list(record.headers or []))


def summary(topic: str, record: Any) -> dict[str, Any]:
    """What may be printed about a dead letter: position, reason headers, key and sizes."""
    h = headers_of(record)
    stored = "dlq.stored_id" in h
    return {
        "topic": topic, "partition": record.partition, "offset": record.offset,
        "failed_at": h.get("dlq.failed_at", ""), "consumer": h.get("dlq.consumer", ""),
        "source": f"{h.get('dlq.source_topic', '?')}@{h.get('dlq.source_partition', '?')}/"
                  f"{h.get('dlq.source_offset', '?')}",
        "error_type": h.get("dlq.error_type", ""), "reason": h.get("dlq.reason", ""),
        "errors": _json(h.get("dlq.errors")), "attempts": h.get("dlq.attempts", ""),
        "key": (record.key or b"").decode("utf-8", "replace") if record.key is not None else None,
        "key_bytes": len(record.key or b""),
        "value_bytes": int(h["dlq.original_bytes"]) if stored and h.get("dlq.original_bytes", "").isdigit()
        else len(record.value or b""),
        "stored_in": h.get("dlq.stored_in"), "stored_id": h.get("dlq.stored_id"),
        "stored_reason": h.get("dlq.stored_reason"),
    }


def _json(text: str | None) -> Any:
    try:
        return json.loads(text) if text else []
    except ValueError:
        return text


async def dlq_topics(c: Any, settings: Any, only: str | None) -> list[str]:
    """Logical names of the dead-letter topics that exist (or just ``only``)."""
    if only:
        return [logical_dlq(only)]
    from shared.topics import all_topics

    known = {t for t in all_topics() if t.endswith(DLQ_SUFFIX)}
    present = await c.topics()
    prefix = settings.topic_prefix
    return sorted(t[len(prefix):] for t in present if t.startswith(prefix) and t[len(prefix):] in known)


async def list_dead_letters(topic: str | None = None) -> list[dict[str, Any]]:
    settings = kafka_settings()
    out: list[dict[str, Any]] = []
    async with consumer(settings) as c:
        for name in await dlq_topics(c, settings, topic):
            async for r in read_all(c, settings.topic(name)):
                out.append(summary(name, r))
    return out


async def fetch(topic: str, partition: int, offset: int) -> tuple[str, Any]:
    settings = kafka_settings()
    name = logical_dlq(topic)
    async with consumer(settings) as c:
        r = await read_one(c, settings.topic(name), partition, offset)
    if r is None:
        raise CliError(f"no dead letter at {name} partition {partition} offset {offset} — "
                       "`parley dlq list` shows where they are")
    return name, r


@app.command("list")
def list_(
    topic: str | None = typer.Option(None, "--topic", help="a topic or its .dlq (default: every dead-letter topic)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON lines instead of a table"),
) -> None:
    """List dead letters: where, when, who, why, key and size (never the value)."""
    items = run(list_dead_letters(topic))
    done = load_replays()
    settings = kafka_settings()
    for it in items:
        it["replayed"] = _position(settings, it["topic"], it["partition"], it["offset"]) in done
    if as_json:
        for it in items:
            typer.echo(json.dumps(it, ensure_ascii=False))
        return
    table = Table(title=f"dead letters ({len(items)})")
    for col in ("topic", "p", "offset", "failed at", "consumer", "source", "error", "reason", "key", "bytes", "replayed"):
        table.add_column(col, overflow="fold")
    for it in items:
        table.add_row(it["topic"], str(it["partition"]), str(it["offset"]), it["failed_at"][:19],
                      it["consumer"], it["source"], it["error_type"], it["reason"][:120],
                      it["key"] or "", str(it["value_bytes"]) + (" (stored)" if it["stored_id"] else ""),
                      "yes" if it["replayed"] else "")
    console.print(table)
    if items:
        console.print("`parley dlq show TOPIC PARTITION OFFSET` for one; `parley dlq replay …` re-publishes it.", soft_wrap=True)


@app.command("show")
def show(
    topic: str = typer.Argument(..., help="the dead-letter topic (or its source topic)"),
    partition: int = typer.Argument(..., min=0),
    offset: int = typer.Argument(..., min=0),
    show_value: bool = typer.Option(False, "--show-value", help="also print the value (may hold personal data)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Show one dead letter: every reason header, the key and sizes (the value only if asked)."""
    name, r = run(fetch(topic, partition, offset))
    info = summary(name, r)
    info["headers"] = {k: v for k, v in headers_of(r).items() if k.startswith("dlq.")}
    if show_value:
        if info["stored_id"]:
            doc = run(stored_body(info, purpose="dlq show --show-value"))
            info["value"] = (doc.get("value") or b"").decode("utf-8", "replace")
        else:
            info["value"] = (r.value or b"").decode("utf-8", "replace")
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"dead letter {name} {partition}/{offset}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for k in ("failed_at", "consumer", "source", "error_type", "attempts", "reason", "key", "key_bytes",
              "value_bytes", "stored_in", "stored_id", "stored_reason"):
        if info.get(k) not in (None, ""):
            table.add_row(k, str(info[k]))
    for e in info["errors"] if isinstance(info["errors"], list) else []:
        table.add_row("error", f"{e.get('field', '')}: {e.get('problem', '')}")
    if show_value:
        table.add_row("value", info["value"])
    console.print(table)


# ------------------------------------------------------------------ replay


def _position(settings: Any, name: str, partition: int, offset: int) -> str:
    """The replay record's key: which cluster and prefix, which dead letter."""
    return f"{settings.bootstrap}|{settings.topic_prefix}|{name}:{partition}:{offset}"


def load_replays() -> dict[str, Any]:
    try:
        return dict(json.loads(replay_file().read_text()))
    except (OSError, ValueError):
        return {}


def _remember(key: str, entry: dict[str, Any]) -> None:
    path = replay_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = load_replays()
    data[key] = entry
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    tmp.replace(path)


async def stored_body(info: dict[str, Any], *, purpose: str) -> dict[str, Any]:
    """The original record kept in a service's database (``dlq.stored_in`` / ``dlq.stored_id``)."""
    from pymongo.errors import PyMongoError

    from shared.kafka.dlq import read_stored_body
    from shared.mongo import make_client

    where = info["stored_in"] or ""
    database, _, collection = where.partition("/")
    if not database or not collection:
        raise CliError(f"the dead letter names no usable store ({where!r})")
    settings = mongo_settings()
    client = make_client(settings)
    try:
        doc = await read_stored_body(client[database][collection], info["stored_id"],
                                     reader=f"parley-cli:{os.environ.get('USER') or 'someone'}"[:200],
                                     purpose=purpose)
    except PyMongoError as exc:
        raise CliError(f"the database does not answer at {settings.url} ({type(exc).__name__}) — start it "
                       "with `parley stack up`, or point PARLEY_MONGO_URL at it") from None
    finally:
        await client.close()
    if doc is None:
        raise CliError(f"the stored body {info['stored_id']} is not in {where} (PARLEY_MONGO_URL={settings.url})")
    return doc


async def replay_one(topic: str, partition: int, offset: int) -> dict[str, Any]:
    """Re-publish one dead letter to its source topic once; say what happened
    (the core is ``shared.kafka.replay.replay_record``; the record file answers a repeat first)."""
    from shared.kafka.replay import replay_record

    settings = kafka_settings()
    name, r = await fetch(topic, partition, offset)
    info = summary(name, r)
    key = _position(settings, name, partition, offset)
    done = load_replays().get(key)
    if done:
        return {"status": "already", "found_in": "record file", **done}

    async def stored(_headers: dict[str, str]) -> dict[str, Any]:
        return await stored_body(info, purpose="dlq replay")

    out = await replay_record(settings, name, r, stored_body=stored, consumer=consumer, producer=producer)
    _remember(key, {k: out[k] for k in ("marker", "topic", "partition", "offset")})
    return out


@app.command("replay")
def replay(
    topic: str = typer.Argument(..., help="the dead-letter topic (or its source topic)"),
    partition: int = typer.Argument(..., min=0),
    offset: int = typer.Argument(..., min=0),
) -> None:
    """Re-publish a dead letter's original bytes to its source topic, once (header replayed_from)."""
    out = run(replay_one(topic, partition, offset))
    if out["status"] == "replayed":
        console.print(f"replayed {out['marker']} to {out['topic']} partition {out['partition']} "
                      f"offset {out['offset']}", soft_wrap=True)
    else:
        console.print(f"already replayed ({out['found_in']}): {out['marker']} is on {out['topic']} "
                      f"partition {out['partition']} offset {out['offset']}; nothing sent", soft_wrap=True)
