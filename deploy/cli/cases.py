"""``parley cases search|show``: cases as the desk sees them, through intake's API.

The CLI sends a staff token (``token.cli_token``: ``PARLEY_TOKEN``, else a development
auditor token) and prints what the API returns — personal data masked by the API.
"""

# ruff: noqa: B008 - typer declares options as argument defaults
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import typer
from rich.table import Table

from deploy.cli.common import CliError, api_url, console, run

app = typer.Typer(help="Cases as intake registered them (through the intake API; masked).",
                  no_args_is_help=True)

#: The intake API's largest page (services/intake/settings.py page_size_max default).
PAGE = 100


def get(path: str, params: dict[str, Any] | None = None) -> Any:
    """GET intake's API; errors name what to do next."""
    from deploy.cli.token import cli_token

    base = api_url("intake")
    query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
    url = f"{base}{path}" + (f"?{query}" if query else "")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {cli_token()}",
                                               "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", "")
        except ValueError:
            detail = ""
        if exc.code == 404:
            raise CliError(f"not found: {detail or path}") from None
        if exc.code in (401, 403):
            raise CliError(f"the intake API refused the token ({exc.code}: {detail}); set PARLEY_TOKEN "
                           "to a staff token, or check PARLEY_AUTH_SECRET matches the services'") from None
        if exc.code == 422:
            raise CliError(f"the intake API refused the request: {detail}") from None
        raise CliError(f"the intake API answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError):
        raise CliError(f"the intake API does not answer at {base} — start it with `parley services up` "
                       "(and the servers with `parley stack up`), or set PARLEY_INTAKE_URL") from None


def _matches(case: dict[str, Any], text: str) -> bool:
    needle = text.casefold()
    hay = [case.get(k) or "" for k in ("case_number", "case_id", "customer_id", "customer_name_masked",
                                       "product", "channel", "priority", "outcome", "matter_ref")]
    hay += case.get("priority_reasons") or []
    hay += [c.get("channel_complaint_id", "") for c in case.get("complaints") or []]
    return any(needle in str(h).casefold() for h in hay)


def search_cases(*, status: str | None, customer: str | None, channel: str | None,
                 text: str | None, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Up to ``limit`` cases, newest first, and the API's total for the server-side filters."""
    found: list[dict[str, Any]] = []
    page, total = 1, 0
    while len(found) < limit:
        body = get("/cases", {"status": status, "customer_id": customer, "channel": channel,
                              "page": page, "page_size": PAGE if text else min(PAGE, limit)})
        total = body["total"]
        items = body["items"]
        found += [c for c in items if not text or _matches(c, text)]
        if len(items) < body["page_size"] or page * body["page_size"] >= total:
            break
        page += 1
    return found[:limit], total


def _short(ts: str | None) -> str:
    return (ts or "")[:16].replace("T", " ")


@app.command("search")
def search(
    status: str | None = typer.Option(None, "--status", help="open or closed"),
    customer: str | None = typer.Option(None, "--customer", help="customer id"),
    channel: str | None = typer.Option(None, "--channel", help="app, hotline, web, ..."),
    text: str | None = typer.Option(None, "--text", help="keep cases whose number, customer, masked "
                                    "name, product, outcome or channel complaint id contain this "
                                    "(filtered here: the API has no text search)"),
    limit: int = typer.Option(20, "--limit", min=1, max=10_000, help="most cases to show"),
    as_json: bool = typer.Option(False, "--json", help="print the API's JSON instead of a table"),
) -> None:
    """Search cases, newest first (filters: status, customer, channel; --text here)."""
    if status and status not in ("open", "closed"):
        raise typer.BadParameter("must be open or closed", param_hint="--status")
    cases, total = run_search(status=status, customer=customer, channel=channel, text=text, limit=limit)
    if as_json:
        typer.echo(json.dumps({"items": cases, "total": total}, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"cases ({len(cases)} shown of {total})")
    for col in ("case number", "status", "received", "deadline", "priority", "product", "channel",
                "customer", "name", "phone", "complaints"):
        table.add_column(col)
    for c in cases:
        table.add_row(c["case_number"], c["status"], _short(c["received_at"]), _short(c["deadline_at"]),
                      c["priority"], c["product"], c["channel"], c["customer_id"],
                      c.get("customer_name_masked", ""), c.get("customer_phone_masked", ""),
                      str(len(c.get("complaints") or [])))
    console.print(table)
    if not cases:
        console.print("No cases match. `parley import FILE` loads a backlog.", soft_wrap=True)


def run_search(**kw: Any) -> tuple[list[dict[str, Any]], int]:
    try:
        return search_cases(**kw)
    except CliError as exc:
        from deploy.cli.common import fail

        fail(str(exc))


@app.command("show")
def show(
    case: str = typer.Argument(..., help="case id or case number (TS-…)"),
    as_json: bool = typer.Option(False, "--json", help="print the API's JSON instead of tables"),
) -> None:
    """Show one case: its fields, complaints and timeline (personal data masked)."""
    async def _get() -> Any:
        return get(f"/cases/{urllib.parse.quote(case, safe='')}")

    c = run(_get())
    if as_json:
        typer.echo(json.dumps(c, ensure_ascii=False, indent=2))
        return
    fields = Table(title=f"case {c['case_number']}", show_header=False)
    fields.add_column("field", style="bold")
    fields.add_column("value")
    for k in ("case_id", "status", "customer_id", "customer_name_masked", "customer_phone_masked",
              "customer_id_number_masked", "channel", "product", "language", "matter_ref", "received_at",
              "registered_at", "deadline_at", "priority", "priority_reasons", "amount_disputed",
              "is_repeat", "linked_case_ids", "closed_at", "outcome"):
        v = c.get(k)
        fields.add_row(k, ", ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else str(v)))
    console.print(fields)
    complaints = Table(title="complaints")
    for col in ("complaint id", "channel", "channel complaint id", "received", "role", "new facts"):
        complaints.add_column(col)
    for x in c.get("complaints") or []:
        complaints.add_row(x["complaint_id"], x["channel"], x["channel_complaint_id"],
                           _short(x["received_at"]), x["role"], str(x.get("new_facts")))
    console.print(complaints)
    timeline = Table(title="timeline")
    timeline.add_column("at")
    timeline.add_column("event")
    for t in c.get("timeline") or []:
        rest = {k: v for k, v in t.items() if k not in ("at",)}
        timeline.add_row(_short(str(t.get("at", ""))), json.dumps(rest, ensure_ascii=False, default=str))
    console.print(timeline)
