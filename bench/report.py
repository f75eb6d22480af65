"""The benchmark's table (figure, raw figure, ratio, target, pass/fail), chart and README section."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

FAIL, PASS, NA = "FAIL", "pass", "n/a"
README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
LEGEND = ("∞: did not happen within the step's cap. Throughput ratios are against the best raw round of the run; "
          "latency ratios against the raw client measured alongside (aiokafka at the same rate just before and "
          "after the step, find_one alternating with GET).")


def _num(x: Any, digits: int = 0) -> str:
    if x is None or x == "inf" or (isinstance(x, float) and math.isinf(x)):
        return "∞"
    if isinstance(x, float) and math.isnan(x):
        return "–"
    return f"{x:,.{digits}f}"


def _ms(x: Any) -> str:
    if x is None or x == "inf" or (isinstance(x, float) and math.isinf(x)):
        return "∞"  # see LEGEND
    if isinstance(x, float) and math.isnan(x):
        return "–"
    return f"{x:,.1f}" if x < 10 else f"{x:,.0f}"


def _ratio(a: Any, b: Any, pct: bool = False) -> str:
    try:
        if a in (None, "inf") or b in (None, "inf") or math.isinf(a) or math.isinf(b) or not b:
            return "–"
        r = a / b
    except TypeError:
        return "–"
    return f"{r * 100:.0f} %" if pct else f"{r:.2f}×"


def _raw(results: dict[str, Any], kind: str, labels: tuple[str, ...] = ()) -> tuple[float, str]:
    """The best per-second figure of the raw rounds (those with ``labels``, or all) and the range.

    Best, not mean: a round measured while the pipeline still worked through a backlog shows
    less than the servers can do, and the ratio should be taken against what they can do.
    """
    rounds = [r for r in results["raw_rounds"] if not labels or r["label"] in labels] or results["raw_rounds"]
    key = "msgs_per_s" if kind == "kafka" else "per_s"
    vals = [r[kind][key] for r in rounds]
    if not vals:
        return math.nan, ""
    spread = f" (best of {len(vals)} rounds: {_num(min(vals))}–{_num(max(vals))})" if len(vals) > 1 else ""
    return max(vals), spread


def row(figure: str, value: str, raw: str = "–", ratio: str = "–", target: str = "–", result: str = "–") -> dict[str, str]:
    return {"figure": figure, "measured": value, "raw": raw, "ratio": ratio, "target": target, "result": result}


def build_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row per figure: what the pipeline did, the raw client's figure, ratio, target."""
    steps = results["steps"]
    plan = results["plan"]
    rows: list[dict[str, str]] = []

    kafka, kspread = _raw(results, "kafka")
    upsert, uspread = _raw(results, "upsert")
    bulk, bspread = _raw(results, "bulk")
    rows.append(row("aiokafka produce→consume, msg/s (raw)", f"{_num(kafka)}/s{kspread}"))
    rows.append(row("single-document upsert, one at a time (raw)", f"{_num(upsert)}/s{uspread}"))
    rows.append(row("insert_many, batches of 500 (raw)", f"{_num(bulk)}/s{bspread}"))

    burst = steps.get("burst")
    if burst:
        near = upsert  # the best raw round: rounds next to a busy pipeline show less than the server can do
        rate = burst["registered_per_s"]
        capped = f", capped at {burst['cap_s']:.0f} s" if burst["capped"] else ""
        ok = rate >= 0.5 * near and rate >= 1000
        alone = burst.get("mode") == "stage alone"
        rows.append(row(
            f"intake burst of {burst['n']:,}: registrations/s" + (", the other workers paused" if alone else ""),
            f"{_num(rate)}/s ({burst['registered']:,} of {burst['published']:,} published in {burst['seconds']:.1f} s"
            f"{capped}; best 5 s {_num(burst['peak_5s_per_s'])}/s" + ("" if alone else f"; {burst['mode']}") + ")",
            f"upsert {_num(near)}/s (best round)", _ratio(rate, near, pct=True), "≥ 50 % of raw upsert and ≥ 1,000/s",
            PASS if ok else FAIL,
        ))
        inv = burst["investigation_per_s"]
        inv_capped = ", capped" if burst.get("investigation_capped") else ""
        rows.append(row(
            "investigation on the burst's cases, completed or paused/s" + (", alone" if alone else ""),
            f"{_num(inv, 1)}/s ({burst['investigation_in_span']:,} in {burst['investigation_seconds']:.1f} s{inv_capped})",
            f"intake {_num(rate, 1)}/s", _ratio(inv, rate, pct=True), "keeps up with intake (≥ 90 %)",
            PASS if rate and inv >= 0.9 * rate else FAIL,
        ))

    for i, asked in enumerate(plan["steady_rates"]):
        st = steps.get(f"steady_{asked:g}")
        if not st:
            continue
        at = f"{st['rate']:g}/s" + ("" if st["rate"] == asked else f" (asked {asked:g}/s: {st['reduced_because']})")
        sustained = "" if st["sustained"] else ", not sustained"
        value = f"{_ms(st['p50_ms'])} / {_ms(st['p99_ms'])} ms at {at}{sustained} ({st['registered']:,}/{st['n']:,})"
        rawk = st["raw_kafka"]
        target, result = "–", "–"
        if i == 0:
            target = f"p99 ≤ 200 ms at {asked:g}/s"
            p99 = st["p99_ms"]
            good = st["rate"] == asked and st["sustained"] and p99 not in (None, "inf") and p99 <= 200
            result = PASS if good else FAIL
        rows.append(row(f"publish→registered p50 / p99, steady {asked:g}/s", value,
                        f"aiokafka {_ms(rawk['p50_ms'])} / {_ms(rawk['p99_ms'])} ms",
                        _ratio(st["p99_ms"], rawk["p99_ms"]), target, result))
        comp = st.get("completion")
        if comp:
            rows.append(row(
                f"received→investigation.completed p50 / p99, at {st['rate']:g}/s",
                f"{_ms(comp['p50_ms'])} / {_ms(comp['p99_ms'])} ms ({comp['completed']:,}/{comp['n']:,} within "
                f"{comp['waited_s']:.0f} s of the end; {comp['paused']} paused for appraisal left out)",
                f"aiokafka {_ms(rawk['p50_ms'])} / {_ms(rawk['p99_ms'])} ms", _ratio(comp["p99_ms"], rawk["p99_ms"]),
            ))

    get = steps.get("negotiation_get")
    if get and "api" in get:
        api, rawf = get["api"], get["raw"]
        good = api["p99_ms"] not in (None, "inf") and (api["p99_ms"] <= 50 or api["p99_ms"] <= 3 * rawf["p99_ms"])
        rows.append(row(
            f"negotiation GET /cases/{{id}} p50 / p99, {get['clients']} clients",
            f"{_ms(api['p50_ms'])} / {_ms(api['p99_ms'])} ms ({api['n']:,} requests, {get['cases']} cases, {api['errors']} errors)",
            f"find_one by _id, {get['clients']} tasks: {_ms(rawf['p50_ms'])} / {_ms(rawf['p99_ms'])} ms",
            _ratio(api["p99_ms"], rawf["p99_ms"]), "p99 ≤ 50 ms or ≤ 3× raw p99", PASS if good else FAIL,
        ))
    elif get:
        rows.append(row("negotiation GET /cases/{id}", f"not measured: {get.get('skipped')}", result=FAIL))

    base = steps.get("probe_0")
    if base:
        upsert_ms = 1000 / upsert if upsert else math.nan
        rows.append(row(
            "intake time per complaint, 0 cases stored",
            f"{_ms(base['intake_ms_per_complaint'])} ms ({base['intake_how']})",
            f"one upsert {_ms(upsert_ms)} ms", _ratio(base["intake_ms_per_complaint"], upsert_ms)))
        rows.append(row("investigation time per complaint, 0 cases stored",
                        f"{_ms(base['investigation_ms_per_complaint'])} ms ({base['investigation_how']})",
                        "–", "–"))
        last = plan["levels"][-1]
        for level in plan["levels"]:
            pr, pre = steps.get(f"probe_{level}"), steps.get(f"preload_{level}")
            if not pr:
                target = "≤ 1.5× the time at 0" if level == last else "–"
                for what in ("intake", "investigation"):
                    rows.append(row(f"{what} time per complaint, {level:,} cases stored",
                                    "not measured: no time left in the budget"
                                    + (f" ({pre['stored']:,} stored)" if pre else ""), "–", "–",
                                    target, NA if level == last else "–"))
                continue
            reached = pr["stored_cases"] >= level
            label = f"{pr['stored_cases']:,} cases stored" + ("" if reached else f" (aimed at {level:,}; not reached in budget)")
            for what, key in (("intake", "intake_ms_per_complaint"), ("investigation", "investigation_ms_per_complaint")):
                target, result = "–", "–"
                if level == last:
                    target = "≤ 1.5× the time at 0" + ("" if level == 50_000 else f" (at 50,000; quick run: {level:,})")
                    ratio = pr[key] / base[key] if _finite(pr[key]) and _finite(base[key]) and base[key] else math.inf
                    result = (PASS if ratio <= 1.5 else FAIL) if reached and level == 50_000 else NA
                extra = f" ({pr[what + '_how']})"
                rows.append(row(f"{what} time per complaint, {label}", f"{_ms(pr[key])} ms{extra}",
                                f"at 0: {_ms(base[key])} ms", _ratio(pr[key], base[key]), target, result))

    for name, rss in sorted(results.get("rss", {}).items()):
        rows.append(row(f"RSS {name} (peak / end)", f"{rss['peak_kib'] / 1024:,.0f} / {rss['end_kib'] / 1024:,.0f} MiB"))
    cpu = results.get("cpu_s") or {}
    total = sum(cpu.values())
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        rows.append(row(f"CPU {name} over the run", f"{seconds:,.0f} s ({seconds / total:.0%} of the measured processes')"
                        if total else f"{seconds:,.0f} s"))
    return rows


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not math.isinf(x) and not math.isnan(x)


def markdown(rows: list[dict[str, str]]) -> str:
    head = "| figure | measured | raw client, same run | ratio | target | result |\n|---|---|---|---|---|---|\n"
    return head + "\n".join(
        f"| {r['figure']} | {r['measured']} | {r['raw']} | {r['ratio']} | {r['target']} | {r['result']} |" for r in rows
    )


def headline(results: dict[str, Any]) -> str:
    kind = "quick run (--quick: small sizes)" if results.get("quick") else "full run"
    load = results.get("load") or (0, 0, 0)
    return (f"{results['date']}, {kind}, {results['total_s']:.0f} s, {results.get('cpus')} cores "
            f"(load at the end {load[0]:.1f}); FerretDB backend: {results.get('backend', 'unknown')}; "
            f"services: {', '.join(results.get('services', []))}")


def print_table(rows: list[dict[str, str]], results: dict[str, Any]) -> str:
    table = markdown(rows) + "\n\n" + LEGEND
    print("\n" + headline(results) + "\n")
    print(table)
    for note in results.get("notes", []):
        print(f"- {note}")
    if results.get("dead_services"):
        print(f"- service processes that died: {', '.join(results['dead_services'])}")
    return table


def update_readme(path: Path, table: str, results: dict[str, Any]) -> None:
    """Put the latest table between the Benchmark section's markers in README.md."""
    text = path.read_text()
    if README_START not in text or README_END not in text:
        print(f"(README has no {README_START} … {README_END} markers; left alone)")
        return
    notes = "".join(f"\n- {n}" for n in results.get("notes", []))
    if results.get("quick"):
        chart_ref = "a quick run's figures are small-sample; a full `make bench` replaces them"
    else:
        chart_ref = f"chart: [bench/results/{results['date']}.png](bench/results/{results['date']}.png)"
    body = f"{README_START}\nLatest run: {headline(results)}; {chart_ref}.\n\n{table}\n{notes}\n{README_END}"
    text = re.sub(re.escape(README_START) + ".*?" + re.escape(README_END), lambda _: body, text, flags=re.S)
    path.write_text(text)
    print("README.md: Benchmark section updated")


def chart(results: dict[str, Any], observer: Any, t_start: float, png: Path) -> None:
    """Six panels: throughput, latency, time per complaint, progress over time, RSS, raw rounds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = results["steps"]
    fig, axes = plt.subplots(3, 2, figsize=(14, 14))
    fig.suptitle("make bench — " + headline(results), fontsize=9)

    # throughput
    ax = axes[0][0]
    kafka, _ = _raw(results, "kafka")
    upsert, _ = _raw(results, "upsert")
    bulk, _ = _raw(results, "bulk")
    labels = ["aiokafka\n(raw)", "upsert\n(raw)", "insert_many\n(raw)"]
    vals = [kafka, upsert, bulk]
    colors = ["#999999"] * 3
    if steps.get("burst"):
        labels += ["intake\nburst", "investigation\nburst"]
        vals += [steps["burst"]["registered_per_s"], steps["burst"]["investigation_per_s"]]
        colors += ["#1f77b4", "#ff7f0e"]
    ax.bar(labels, [v if _finite(v) else 0 for v in vals], color=colors)
    ax.set_yscale("log")
    ax.set_ylabel("per second (log)")
    ax.set_title("throughput: raw clients (grey) and the pipeline")
    ax.axhline(1000, color="red", lw=0.8, ls="--")

    # latency
    ax = axes[0][1]
    names, p50, p99, cols = [], [], [], []

    def add(name: str, a: Any, b: Any, color: str) -> None:
        names.append(name)
        p50.append(a if _finite(a) else 0)
        p99.append(b if _finite(b) else 0)
        cols.append(color)

    for asked in results["plan"]["steady_rates"]:
        st = steps.get(f"steady_{asked:g}")
        if st:
            at = f"@{st['rate']:g}/s" + ("" if st["rate"] == asked else f"\n(for {asked:g}/s)")
            add(f"aiokafka\n{at}", st["raw_kafka"]["p50_ms"], st["raw_kafka"]["p99_ms"], "#999999")
            add(f"→registered\n{at}", st["p50_ms"], st["p99_ms"], "#1f77b4")
            if st.get("completion"):
                add(f"→completed\n{at}", st["completion"]["p50_ms"], st["completion"]["p99_ms"], "#ff7f0e")
    get = steps.get("negotiation_get")
    if get and "api" in get:
        add("find_one\n(raw)", get["raw"]["p50_ms"], get["raw"]["p99_ms"], "#999999")
        add("GET /cases", get["api"]["p50_ms"], get["api"]["p99_ms"], "#2ca02c")
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], p50, width=0.4, color=cols, alpha=0.6, label="p50")
    ax.bar([i + 0.2 for i in x], p99, width=0.4, color=cols, label="p99")
    ax.set_xticks(list(x), names, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("ms (log); light p50, dark p99")
    ax.set_title("latency (never-arrived shown as 0)")

    # time per complaint vs stored cases
    ax = axes[1][0]
    probes = sorted((v for k, v in steps.items() if k.startswith("probe_")), key=lambda v: v["stored_cases"])
    if probes:
        xs = [pr["stored_cases"] for pr in probes]
        ax.plot(xs, [pr["intake_ms_per_complaint"] if _finite(pr["intake_ms_per_complaint"]) else math.nan for pr in probes],
                "o-", label="intake")
        ax.plot(xs, [pr["investigation_ms_per_complaint"] if _finite(pr["investigation_ms_per_complaint"]) else math.nan
                     for pr in probes], "s-", label="investigation")
        ax.legend()
    ax.set_xlabel("cases stored")
    ax.set_ylabel("ms per complaint")
    ax.set_title("time per complaint as data grows")

    # progress over the run
    ax = axes[1][1]
    reg = [t - t_start for t in observer.registered_times] if observer else []
    hand = [t - t_start for t in observer.handled_times] if observer else []
    pub = sorted(t - t_start for t in observer.published.values()) if observer else []
    ax.plot(pub, range(1, len(pub) + 1), label="published to complaint.received", lw=1)
    ax.plot(reg, range(1, len(reg) + 1), label="complaint.registered", lw=1)
    ax.plot(hand, range(1, len(hand) + 1), label="investigation completed/paused", lw=1)
    for i, (_name, a, b) in enumerate(results.get("spans", [])):
        ax.axvspan(a, b, color="#eeeeee" if i % 2 else "#f8f8f8", zorder=0)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("complaints (cumulative)")
    ax.set_title("the run: steps shaded")
    ax.legend(fontsize=7)

    # RSS
    ax = axes[2][0]
    rss = sorted(results.get("rss", {}).items())
    if rss:
        n = [k.replace("service ", "").replace("server ", "srv ") for k, _ in rss]
        ax.barh(n, [v["peak_kib"] / 1024 for _, v in rss], color="#bbbbbb", label="peak")
        ax.barh(n, [v["end_kib"] / 1024 for _, v in rss], color="#1f77b4", height=0.4, label="end")
        ax.legend()
    ax.set_xlabel("RSS MiB")
    ax.set_title("memory of each process (VmRSS)")

    # raw rounds over the run
    ax = axes[2][1]
    rr = results["raw_rounds"]
    if rr:
        at = [r["at_s"] for r in rr]
        ax.plot(at, [r["kafka"]["msgs_per_s"] for r in rr], "o-", label="aiokafka msg/s")
        ax.plot(at, [r["upsert"]["per_s"] for r in rr], "o-", label="upsert/s")
        ax.plot(at, [r["bulk"]["per_s"] for r in rr], "o-", label="insert_many docs/s")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax.set_xlabel("seconds since start")
    ax.set_title("raw client rounds, interleaved with the pipeline steps")

    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(png, dpi=90)
    plt.close(fig)
