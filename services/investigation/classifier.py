"""Complaint categoriser: train, save, load and predict the six complaint categories.

Two linear models live in one artifact and each text is routed to one of them by script:

* Chinese (the 黑猫投诉 data, ``complaints-zh/train.csv``): TF-IDF of character 1-3-grams
  plus TF-IDF of jieba words, multinomial logistic regression with balanced class weights.
* English (weak labels from the CFPB sample, whose ``issue`` is mapped to a category):
  TF-IDF of word 1-2-grams, the same classifier.

The hyper-parameters were chosen by 5-fold cross-validation on train.csv only; see
``docs/classifier.md`` for the method and the figures.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import random
import re
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer

log = logging.getLogger(__name__)

# Stable codes, in the label order of complaints-zh/label_mapping.txt (0..5).
CATEGORIES: tuple[str, ...] = (
    "collection_conduct",  # 0 催收行为类
    "other",  # 1 其他类
    "contract_terms",  # 2 合同条款类
    "pricing_fees",  # 3 定价收费类
    "customer_service",  # 4 客户服务类
    "marketing",  # 5 营销宣传类
)

ARTIFACT_NAME = "complaint-classifier.joblib"
ARTIFACT_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parents[2]

# Chosen by 5-fold cross-validation on train.csv (docs/classifier.md).
ZH_C = 2.0
EN_C = 4.0
EN_PER_CLASS_CAP = 400
SEED = 20231

# CFPB issue -> category, for weak English labels. Debt-collection complaints are matched by
# product first; anything unlisted is "other" (credit-report disputes, fraud, ...), which is
# also how the Chinese data labels credit-report complaints.
_EN_ISSUES: dict[str, str] = {
    # pricing_fees: fees, interest, charges taken from the account
    "Fees or interest": "pricing_fees",
    "Charged fees or interest you didn't expect": "pricing_fees",
    "Unexpected or other fees": "pricing_fees",
    "Problem with cash advance": "pricing_fees",
    "Problem caused by your funds being low": "pricing_fees",
    "Overdraft, savings, or rewards features": "pricing_fees",
    "Problem with a lender or other company charging your account": "pricing_fees",
    "Wrong amount charged or received": "pricing_fees",
    # marketing: advertising, sales, products one did not ask for
    "Advertising and marketing, including promotional offers": "marketing",
    "Problem with additional add-on products or services": "marketing",
    "Confusing or missing disclosures": "marketing",
    "Received a loan you didn't apply for": "marketing",
    "Getting a credit card": "marketing",
    "Getting a loan or lease": "marketing",
    "Getting a loan": "marketing",
    "Getting the loan": "marketing",
    "Getting a line of credit": "marketing",
    "Applying for a mortgage or refinancing an existing mortgage": "marketing",
    # contract_terms: terms, repayment arrangements, the life and end of a contract
    "Other features, terms, or problems": "contract_terms",
    "Managing the loan or lease": "contract_terms",
    "Problems at the end of the loan or lease": "contract_terms",
    "Struggling to pay mortgage": "contract_terms",
    "Struggling to pay your loan": "contract_terms",
    "Struggling to repay your loan": "contract_terms",
    "Struggling to pay your bill": "contract_terms",
    "Closing on a mortgage": "contract_terms",
    # customer_service: handling, investigations, access, payments not processed
    "Problem with customer service": "customer_service",
    "Managing an account": "customer_service",
    "Closing an account": "customer_service",
    "Closing your account": "customer_service",
    "Opening an account": "customer_service",
    "Problem with a credit reporting company's investigation into an existing problem": (
        "customer_service"
    ),
    "Problem with a company's investigation into an existing issue": "customer_service",
    "Unable to get your credit report or credit score": "customer_service",
    "Trouble using the card": "customer_service",
    "Trouble using your card": "customer_service",
    "Can't contact lender or servicer": "customer_service",
    "Other service problem": "customer_service",
    "Problem with fraud alerts or security freezes": "customer_service",
    "Managing, opening, or closing your mobile wallet account": "customer_service",
    "Problem when making payments": "customer_service",
    "Trouble during payment process": "customer_service",
    "Dealing with your lender or servicer": "customer_service",
    "Money was not available when promised": "customer_service",
    "Problem getting a card or closing an account": "customer_service",
    "Loan payment wasn't credited to your account": "customer_service",
}

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_REDACTED = re.compile(r"\bX{2,}(/X{2,})*\b|\{\$[\d.,]+\}")


def repo_root() -> Path:
    """The repository root (the directory holding services/)."""
    return REPO_ROOT


def shared_data_dir() -> Path:
    """The shared data directory: $PARLEY_SHARED_DATA, else ../shared/data beside the repo."""
    env = os.environ.get("PARLEY_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def model_dir() -> Path:
    """Where the artifact lives: $PARLEY_MODEL_DIR, else var/models in the repo root."""
    env = os.environ.get("PARLEY_MODEL_DIR")
    return Path(env) if env else REPO_ROOT / "var" / "models"


def artifact_path() -> Path:
    """The path of the model artifact."""
    return model_dir() / ARTIFACT_NAME


# --------------------------------------------------------------------------- text helpers


def _jieba() -> Any:
    """Import jieba quietly (its pkg_resources use warns on newer setuptools)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import jieba

    jieba.setLogLevel(logging.WARNING)
    return jieba


def segment(texts: Iterable[str]) -> list[str]:
    """Split Chinese texts into space-joined jieba words (lower-cased)."""
    jieba = _jieba()
    return [" ".join(w for w in jieba.lcut(t.lower()) if not w.isspace()) for t in texts]


def _strip_redactions(texts: Iterable[str]) -> list[str]:
    """Drop the CFPB's XXXX redaction marks and {$amount} tags."""
    return [_REDACTED.sub(" ", t) for t in texts]


def is_chinese(text: str) -> bool:
    """True when the text should go to the Chinese model (CJK script dominates, or no Latin)."""
    if _CJK.search(text) is None:  # most English texts: no list of every Latin letter to count
        return _LATIN.search(text) is None
    # a Chinese complaint with a few English words or names is still Chinese
    return len(_CJK.findall(text)) * 8 >= len(_LATIN.findall(text))


def _zh_pipeline(c: float = ZH_C) -> Pipeline:
    """char 1-3-gram TF-IDF + jieba word TF-IDF -> balanced logistic regression."""
    features = ColumnTransformer(
        [
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2, lowercase=True
                ),
                0,
            ),
            ("words", TfidfVectorizer(token_pattern=r"(?u)\S+", sublinear_tf=True), 1),
        ]
    )
    to_columns = FunctionTransformer(_zh_columns)
    clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    return make_pipeline(to_columns, features, clf)


def _zh_columns(texts: Sequence[str]) -> np.ndarray:
    """Two columns per text: the raw text and its jieba segmentation."""
    texts = list(texts)
    return np.array([texts, segment(texts)], dtype=object).T


def _en_pipeline(c: float = EN_C) -> Pipeline:
    """English word 1-2-gram TF-IDF -> balanced logistic regression."""
    return make_pipeline(
        FunctionTransformer(_strip_redactions),
        TfidfVectorizer(
            ngram_range=(1, 2), sublinear_tf=True, min_df=2, max_df=0.5, stop_words="english"
        ),
        LogisticRegression(C=c, max_iter=3000, class_weight="balanced"),
    )


# --------------------------------------------------------------------------- data


def read_labelled_csv(path: Path) -> tuple[list[str], list[int]]:
    """Rows ``text,label`` without a header, read with the csv module."""
    texts: list[str] = []
    labels: list[int] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.reader(fh):
            if len(row) != 2 or not row[0].strip():
                log.warning("skipping malformed row %s in %s", len(texts) + 1, path)
                continue
            texts.append(row[0])
            labels.append(int(row[1]))
    return texts, labels


def cfpb_category(record: dict[str, Any]) -> str | None:
    """The weak category of a CFPB record from its product/issue, None if it has no narrative."""
    if not (record.get("complaint_what_happened") or "").strip():
        return None
    if record.get("product") == "Debt collection":
        return "collection_conduct"
    return _EN_ISSUES.get(record.get("issue") or "", "other")


def read_cfpb(path: Path, cap: int = EN_PER_CLASS_CAP) -> tuple[list[str], list[int]]:
    """English narratives with weak labels, at most ``cap`` per category (seeded sample)."""
    by_cat: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            cat = cfpb_category(record)
            if cat is not None:
                by_cat[cat].append(record["complaint_what_happened"])
    rng = random.Random(SEED)
    texts: list[str] = []
    labels: list[int] = []
    for idx, cat in enumerate(CATEGORIES):
        rows = by_cat[cat]
        if len(rows) > cap:
            rows = rng.sample(rows, cap)
        texts.extend(rows)
        labels.extend([idx] * len(rows))
    log.info("CFPB weak labels: %s", {c: len(by_cat[c]) for c in CATEGORIES})
    return texts, labels


# --------------------------------------------------------------------------- model


@dataclass
class ComplaintClassifier:
    """The two fitted pipelines and what they were trained on."""

    zh: Pipeline
    en: Pipeline | None
    meta: dict[str, Any] = field(default_factory=dict)

    def predict(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """Category code and confidence (the model's probability, 0..1) for each text."""
        out: list[tuple[str, float]] = [("other", 0.0)] * len(texts)
        zh_idx = [i for i, t in enumerate(texts) if self.en is None or is_chinese(t)]
        en_idx = sorted(set(range(len(texts))) - set(zh_idx))
        for model, idx in ((self.zh, zh_idx), (self.en, en_idx)):
            if not idx or model is None:
                continue
            proba = model.predict_proba([texts[i] for i in idx])
            classes = model.classes_
            for row, i in zip(proba, idx, strict=True):
                best = int(np.argmax(row))
                out[i] = (CATEGORIES[int(classes[best])], round(float(row[best]), 4))
        return out


def train(
    data_dir: Path | None = None, include_english: bool = True, zh_c: float = ZH_C
) -> ComplaintClassifier:
    """Fit the Chinese model on complaints-zh/train.csv and the English one on the CFPB sample."""
    data_dir = data_dir or shared_data_dir()
    started = time.monotonic()
    texts, labels = read_labelled_csv(data_dir / "complaints-zh" / "train.csv")
    log.info(
        "training the Chinese model on %s rows: %s", len(texts), sorted(Counter(labels).items())
    )
    zh = _zh_pipeline(zh_c).fit(texts, labels)
    meta: dict[str, Any] = {
        "version": ARTIFACT_VERSION,
        "sklearn": sklearn.__version__,
        "zh_rows": len(texts),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    en = None
    cfpb = data_dir / "cfpb-2023-sample.jsonl.gz"
    if include_english and cfpb.exists():
        en_texts, en_labels = read_cfpb(cfpb)
        log.info("training the English model on %s weakly labelled rows", len(en_texts))
        en = _en_pipeline().fit(en_texts, en_labels)
        meta["en_rows"] = len(en_texts)
    elif include_english:
        log.warning("no %s: English texts will go to the Chinese model", cfpb)
    meta["train_seconds"] = round(time.monotonic() - started, 1)
    log.info("trained in %.1fs", meta["train_seconds"])
    return ComplaintClassifier(zh=zh, en=en, meta=meta)


def save(model: ComplaintClassifier, path: Path | None = None) -> Path:
    """Write the artifact atomically; return its path."""
    path = path or artifact_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    joblib.dump({"zh": model.zh, "en": model.en, "meta": model.meta}, tmp, compress=3)
    tmp.replace(path)
    log.info("saved the model to %s (%s bytes)", path, path.stat().st_size)
    return path


def load(path: Path | None = None) -> ComplaintClassifier:
    """Read the artifact; FileNotFoundError if absent, ValueError if from another version."""
    path = path or artifact_path()
    if not path.exists():
        raise FileNotFoundError(path)
    with warnings.catch_warnings():
        # sklearn's InconsistentVersionWarning: we check the version ourselves below
        warnings.simplefilter("ignore")
        blob = joblib.load(path)
    meta = blob.get("meta", {})
    if meta.get("version") != ARTIFACT_VERSION or meta.get("sklearn") != sklearn.__version__:
        raise ValueError(
            f"model artifact {path} is version {meta.get('version')} / scikit-learn "
            f"{meta.get('sklearn')}; this code needs {ARTIFACT_VERSION} / {sklearn.__version__}"
        )
    return ComplaintClassifier(zh=blob["zh"], en=blob["en"], meta=meta)


def load_or_train(path: Path | None = None) -> ComplaintClassifier:
    """Load the artifact, training and saving it first when it is missing or stale."""
    try:
        return load(path)
    except FileNotFoundError:
        log.info("no model artifact at %s: training one", path or artifact_path())
    except ValueError as exc:
        log.warning("%s: retraining", exc)
    model = train()
    save(model, path)
    return model


_loaded: ComplaintClassifier | None = None


def predict(texts: Sequence[str]) -> list[tuple[str, float]]:
    """Category code and confidence for each text, with the saved model (trained if needed)."""
    global _loaded
    if _loaded is None:
        _loaded = load_or_train()
    return _loaded.predict(texts)


def evaluate(model: ComplaintClassifier, path: Path) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-category F1 of the model on a labelled csv."""
    texts, labels = read_labelled_csv(path)
    predicted = [CATEGORIES.index(code) for code, _ in model.predict(texts)]
    per_class = f1_score(labels, predicted, average=None, labels=list(range(len(CATEGORIES))))
    return {
        "rows": len(texts),
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_f1": float(f1_score(labels, predicted, average="macro")),
        "per_class_f1": {c: float(f) for c, f in zip(CATEGORIES, per_class, strict=True)},
    }
