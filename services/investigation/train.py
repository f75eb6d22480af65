"""Train the complaint categoriser, save it, and report its figures on dev.csv.

    python -m services.investigation.train

Writes the artifact to $PARLEY_MODEL_DIR (default var/models/) and prints accuracy, macro-F1
and per-category F1 on complaints-zh/dev.csv, which plays no part in training.
"""

from __future__ import annotations

import logging
import sys

from services.investigation import classifier

log = logging.getLogger(__name__)


def main() -> int:
    """Train, save, evaluate on dev.csv; exit 0."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    model = classifier.train()
    path = classifier.save(model)
    dev = classifier.shared_data_dir() / "complaints-zh" / "dev.csv"
    if not dev.exists():
        log.warning("no %s: nothing to evaluate", dev)
        return 0
    report = classifier.evaluate(model, dev)
    lines = [
        f"model: {path}",
        f"dev.csv rows: {report['rows']}",
        f"accuracy: {report['accuracy']:.4f}",
        f"macro-F1: {report['macro_f1']:.4f}",
        *(f"  F1 {code:<18} {f1:.4f}" for code, f1 in report["per_class_f1"].items()),
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
