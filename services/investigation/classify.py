"""Evaluation command: categorise complaints read as JSON lines on stdin.

    python -m services.investigation.classify < complaints.jsonl

Each input line ``{"text": "..."}`` gives exactly one output line, in order,
``{"category": "<code>", "confidence": <0..1>}``; a line that cannot be read gives
``{"error": "<what is wrong>"}`` and the run goes on. Exit status 0. Logs go to stderr only.
The model artifact is trained first when it is missing.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from services.investigation import classifier

log = logging.getLogger(__name__)

BATCH = 256


def parse_line(raw: bytes) -> str | dict[str, str]:
    """The text of one input line, or an ``{"error": ...}`` object saying why there is none."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"error": "line is not valid UTF-8"}
    line = line.removeprefix("\ufeff").strip()
    if not line:
        return {"error": "blank line"}
    try:
        obj: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"error": f"invalid JSON: {exc.msg} at column {exc.colno}"}
    if not isinstance(obj, dict):
        return {"error": f"expected a JSON object, got {type(obj).__name__}"}
    if "text" not in obj:
        return {"error": "missing field 'text'"}
    text = obj["text"]
    if not isinstance(text, str):
        return {"error": f"field 'text' must be a string, got {type(text).__name__}"}
    if not text.strip():
        return {"error": "field 'text' is empty"}
    return text


def _batches(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def run(stdin: IO[bytes], stdout: IO[str], model: classifier.ComplaintClassifier) -> int:
    """Categorise every line of ``stdin`` onto ``stdout``; return the number of lines."""
    count = 0
    for batch in _batches(stdin, BATCH):
        parsed = [parse_line(raw) for raw in batch]
        texts = [p for p in parsed if isinstance(p, str)]
        predictions = iter(model.predict(texts)) if texts else iter(())
        for item in parsed:
            if isinstance(item, str):
                code, confidence = next(predictions)
                out: dict[str, Any] = {"category": code, "confidence": confidence}
            else:
                out = item
            stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        stdout.flush()
        count += len(batch)
    return count


def main() -> int:
    """Entry point: load (or train) the model, then stream stdin to stdout."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    model = classifier.load_or_train()
    sys.stdout.reconfigure(encoding="utf-8")  # type: ignore[union-attr]
    count = run(sys.stdin.buffer, sys.stdout, model)
    log.info("categorised %s lines", count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
