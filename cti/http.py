"""The engine's two HTTP listeners.

- The metrics listener (`metrics.listen:port`, cti/metrics_http.py) serves only GET
  /metrics and /healthz and nothing else, so that Prometheus may scrape it from another
  host without anything there being able to change the engine.
- The control API (`http.listen:port`) needs `Authorization: Bearer <token>` on every
  request (the token is in `http.token_file`, mode 0600) and refuses cross-origin
  requests outright, so that a web page open on an operator's machine cannot log an
  agent out or reload the engine with a form post. Caller numbers a caller withheld are
  masked in every answer.

Routes: GET /agents, POST /agents/{id}/{login|logout|pause|unpause|end_wrapup},
POST /reload, GET /callbacks?hours=24 (calls that ended in a callback, with the request's
state, attempts, next attempt and outcome), POST /callbacks/{request_id}/cancel, GET /quarantine,
POST /quarantine/{call_id}/retry.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from acd import agent_state
from acd.agents import Control, backoff_left, reason
from acd.events import AgentControl
from config.control_token import authorized
from cti.callbacks import list_requests
from cti.decode import REASON
from cti.logs import mask_number
from cti.metrics_http import json_page
from tickets.store import callback_requests, list_quarantine

if TYPE_CHECKING:
    from cti.engine import Engine

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 16 * 1024


def problem(status: int, detail: str, **headers: str) -> web.Response:
    return web.json_response({"error": detail}, status=status, headers=headers or None)


# -- the metrics listener's pages (served by cti/metrics_http.py) ---------------------------


def metrics_page(engine: Engine) -> tuple[int, str, bytes]:
    return 200, CONTENT_TYPE_LATEST, generate_latest(engine.registry)


def health_page(engine: Engine) -> tuple[int, str, bytes]:
    # Healthy means routing: connected, and the picture rebuilt after the last (re)connect.
    routing = engine.ami.connected and engine.dispatcher.state.routing
    store = engine.store_figures()
    return json_page(200 if routing else 503, {
        "ami_connected": engine.ami.connected, "routing": engine.dispatcher.state.routing,
        "calls": len(engine.dispatcher.state.calls), "store_pending": store["pending"],
        "store_quarantined": store["quarantined"]})


# -- the control API ---------------------------------------------------------------------


def _same_origin(request: web.Request) -> bool:
    """A browser names the page that sent a request in Origin (and Sec-Fetch-Site); a
    client like curl or `hotline reload` sends neither."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


def guard(token: str) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _same_origin(request):
            return problem(403, "cross-origin requests are refused by the hotline control API")
        if not authorized(request.headers.get("Authorization"), token):
            return problem(401, "the control API needs 'Authorization: Bearer <token>' (the token is in "
                                "http.token_file of engine.yaml)", **{"WWW-Authenticate": "Bearer"})
        return await handler(request)

    return middleware


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    """The request's JSON object body ({} when there is none), or the error to answer."""
    if not request.can_read_body:
        return {}
    if request.content_type != "application/json":
        return problem(415, "the body must be JSON (Content-Type: application/json)")
    try:
        body = await request.json()
    except ValueError:
        return problem(400, "the body must be JSON, e.g. {\"reason\": \"05\"}")
    if not isinstance(body, dict):
        return problem(400, "the body must be a JSON object")
    return body


def control_app(engine: Engine) -> web.Application:
    async def agents(_: web.Request) -> web.Response:
        st = engine.dispatcher.state
        now = engine.dispatcher.clock()
        return web.json_response([
            {"id": a.agent_id, "state": agent_state(a, now), "reason": reason(a, now) or None,
             "backoff_left": round(backoff_left(a, now), 1), "queues": sorted(a.queues), "skills": a.skills,
             "registered": a.registered, "reachable": not a.unreachable, "calls_taken": a.calls_taken,
             "idle_seconds": round(now - a.idle_since, 1) if agent_state(a, now) == "available" else None}
            for a in sorted(st.agents.values(), key=lambda a: a.agent_id) if a.configured
        ])

    async def control(request: web.Request) -> web.Response:
        agent_id = request.match_info["agent"]
        try:
            action = Control(request.match_info["action"].replace("-", "_"))
        except ValueError:
            known = ", ".join(c.value for c in Control)
            return problem(404, f"unknown action {request.match_info['action'][:40]!r}; one of {known}")
        agent = engine.dispatcher.state.agents.get(agent_id)
        if agent is None or not agent.configured:
            return problem(404, f"no agent {agent_id[:40]!r} in agents.yaml")
        body = await _json_body(request)
        if isinstance(body, web.Response):
            return body
        if set(body) - {"reason"}:
            return problem(400, "the body may only have the field 'reason'")
        reason = body.get("reason", "")
        if not isinstance(reason, str) or not REASON.fullmatch(reason):
            return problem(400, "reason: up to 32 letters, digits, spaces, '_' or '-'")
        try:
            done = await engine.dispatcher.control(AgentControl(agent_id, action, reason))
        except TimeoutError:
            return problem(503, "the engine did not answer in time; try again")
        if not done.ok:
            return problem(409, done.reason)
        return web.json_response({"ok": True, "agent": agent_id, "action": action.value,
                                  "state": agent_state(agent, engine.dispatcher.clock())})

    async def callbacks(request: web.Request) -> web.Response:
        try:
            hours = float(request.query.get("hours", "24"))
        except ValueError:
            return problem(400, "hours must be a number, e.g. ?hours=24")
        if not 0 < hours <= 24 * 90:
            return problem(400, "hours must be between 0 and 2160")
        since = time.time() - hours * 3600
        rows, requests = await asyncio.to_thread(_callbacks, engine.outbox.engine, since)
        return web.json_response([_masked(row) for row in _with_requests(rows, requests)])

    async def quarantine(_: web.Request) -> web.Response:
        """Records the store refused for good, with why and what to do (no caller data)."""
        items = await asyncio.to_thread(list_quarantine, engine.outbox.spool)
        return web.json_response([{"call_id": q.call_id, "error": q.error, "quarantined_at": q.quarantined_at,
                                   "attempts": q.attempts, "hint": q.hint} for q in items])

    async def retry(request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        try:
            engine.outbox.requeue(call_id)
        except LookupError:
            return problem(404, f"no quarantined record for call {call_id[:64]!r}")
        except FileExistsError as exc:
            return problem(409, str(exc))
        return web.json_response({"ok": True, "call_id": call_id, "requeued": True})

    async def cancel_callback(request: web.Request) -> web.Response:
        """A supervisor stops a callback (a wrongly keyed number, the citizen called again)."""
        request_id = request.match_info["request_id"]
        if engine.callbacks is None or not await engine.callbacks.cancel(request_id):
            return problem(404, f"no pending or ringing callback {request_id[:80]!r}")
        return web.json_response({"ok": True, "request_id": request_id, "state": "cancelled"})

    async def reload(request: web.Request) -> web.Response:
        if request.body_exists:  # Content-Length or chunked
            return problem(400, "reload takes no body: it re-reads the configuration folder")
        errors = await engine.reload()
        return web.json_response({"ok": not errors, "errors": errors, "restart_needed": list(engine.restart_needed)},
                                 status=200 if not errors else 422)

    app = web.Application(client_max_size=MAX_BODY, middlewares=[guard(engine.token)])
    app.router.add_get("/agents", agents)
    app.router.add_post("/agents/{agent}/{action}", control)
    app.router.add_post("/reload", reload)
    app.router.add_get("/callbacks", callbacks)
    app.router.add_post("/callbacks/{request_id}/cancel", cancel_callback)
    app.router.add_get("/quarantine", quarantine)
    app.router.add_post("/quarantine/{call_id}/retry", retry)
    return app


def _masked(row: dict[str, Any]) -> dict[str, Any]:
    """A withheld number shows its last four digits only, and the name not at all."""
    restricted = bool(row.get("restricted", False))
    if restricted:
        row["caller_num"] = mask_number(str(row.get("caller_num", "")), True)
        row["caller_name"] = ""
        request = row.get("request")
        if isinstance(request, dict):
            request["number"] = mask_number(str(request.get("number", "")), True)
    row["restricted"] = restricted
    return row


def _callbacks(db: Any, since: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return callback_requests(db, since), list_requests(db, since)


def _with_requests(rows: list[dict[str, Any]], requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls that ended in a callback (outcome callback), each with its request (state,
    attempts, next attempt, outcome; null for an overflow to the callback message, which
    books nothing), and the requests whose booking call's record is not stored yet."""
    by_call = {r["call_id"]: r for r in requests}
    out = [{**row, "request": by_call.pop(row["call_id"], None)} for row in rows]
    for request in by_call.values():
        out.append({"call_id": request["call_id"], "queue": request["queue"], "caller_num": request["number"],
                    "caller_name": "", "restricted": request["restricted"], "requested": request["booked"],
                    "request": request})
    return out
