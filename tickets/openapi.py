"""The OpenAPI 3 document of the ticket API, built from the same pydantic models that check
the bodies (so the document cannot drift from what the server accepts), plus the response
shapes. Served at GET /api/v1/openapi.json; schemathesis runs over it in the tests."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel

from tickets import bodies as api
from tickets.lifecycle import Action, State

PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"
NULLABLE_STR = {"type": ["string", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}

SUMMARY = {
    "type": "object",
    "required": ["id", "number", "state", "state_label", "channel", "category", "urgency", "caller_num", "overdue",
                 "created"],
    "properties": {
        "id": {"type": "integer"}, "number": {"type": "string", "pattern": "^[0-9]{13,}$"},
        "state": {"type": "string", "enum": [s.value for s in State]}, "state_label": {"type": "string"},
        "channel": {"type": "string"}, "category": {"type": "string"}, "urgency": {"type": "string"},
        "caller_num": {"type": "string"}, "district": {"type": "string"}, "department_id": NULLABLE_INT,
        "agent_id": NULLABLE_STR, "due_at": NULLABLE_STR, "overdue": {"type": "boolean"}, "late": {"type": "boolean"},
        "urged": {"type": "integer"}, "created": {"type": "string"},
    },
}
TICKET = {
    "allOf": [{"$ref": REF.format(model="TicketSummary")}, {
        "type": "object",
        "required": ["version", "calls", "allowed_actions", "content"],
        "properties": {
            "caller_name": {"type": "string"}, "content": {"type": "string"}, "version": {"type": "integer"},
            "department": {"type": ["object", "null"]}, "original": NULLABLE_STR,
            "calls": {"type": "array", "items": {"type": "object", "required": ["call_id"]}},
            "allowed_actions": {"type": "array", "items": {"type": "string", "enum": [a.value for a in Action]}},
        },
    }],
}
EVENT = {
    "type": "object", "required": ["seq", "at", "actor", "role", "action", "from", "to", "note", "data"],
    "properties": {"seq": {"type": "integer", "minimum": 1}, "at": {"type": "string"}, "actor": {"type": "string"},
                   "role": {"type": "string"}, "action": {"type": "string"}, "action_label": {"type": "string"},
                   "from": {"type": "string"}, "to": {"type": "string"}, "note": {"type": "string"},
                   "data": {"type": "object"}},
}
PAGE = {
    "type": "object", "required": ["total", "page", "per_page", "items"],
    "properties": {"total": {"type": "integer", "minimum": 0},
                   "total_capped": {"type": "boolean",
                                    "description": "a text search counts matches up to a cap: true means there "
                                                   "are more than `total`"},
                   "page": {"type": "integer"}, "per_page": {"type": "integer"},
                   "items": {"type": "array", "items": {"$ref": REF.format(model="TicketSummary")}}},
}
ERROR = {
    "type": "object", "required": ["error", "message"],
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"},
                   "allowed": {"type": "array", "items": {"type": "string"}}},
}
ARTICLE = {
    "type": "object", "required": ["id", "title", "body", "category", "tags", "uses"],
    "properties": {"id": {"type": "integer"}, "title": {"type": "string"}, "body": {"type": "string"},
                   "category": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                   "uses": {"type": "integer"}, "valid_from": NULLABLE_STR, "valid_to": NULLABLE_STR,
                   "author": {"type": "string"}},
}
ANY_OBJECT = {"type": "object"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: dict[str, Any], *, body: type[BaseModel] | None = None, status: str = "200",
        params: list[dict[str, Any]] | None = None, public: bool = False) -> dict[str, Any]:
    errors = {code: {"description": text, **_json(_ref("Error"))} for code, text in (
        ("400", "bad request (not JSON, a bad id)"), ("401", "no token or an expired one"),
        ("403", "the role or department may not"), ("404", "not found or not yours"),
        ("409", "illegal transition: `allowed` names the actions the state allows"),
        ("413", "body too large"), ("422", "a field is invalid: `field` names it"),
        ("503", "the ticket store is unavailable: nothing was changed, try again (Retry-After)"))}
    if public:
        errors["401"] = {"description": "wrong user name or password", **_json(_ref("Error"))}
        errors["429"] = {"description": "too many failed sign-ins", **_json(_ref("Error"))}
    out: dict[str, Any] = {"summary": summary, "responses": {status: {"description": "OK", **_json(ok)}, **errors}}
    if body is not None:
        out["requestBody"] = {"required": True, **_json(_ref(body.__name__))}
    if params:
        out["parameters"] = params
    if not public:
        out["security"] = [{"bearer": []}]
    return out


REF_PARAM = {"name": "ref", "in": "path", "required": True, "description": "the ticket's id or its 13-digit number",
             "schema": {"type": "string", "pattern": "^[0-9]{1,9}$|^[0-9]{13,16}$"}}
ACTION_PARAM = {"name": "action", "in": "path", "required": True,
                "schema": {"type": "string", "enum": [a.value for a in Action if a is not Action.OPEN_DRAFT]}}
ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1,
                                                                        "maximum": 2**31 - 1}}
PAGE_PARAM = {"name": "page", "in": "query", "required": False,
              "schema": {"type": "integer", "minimum": 1, "maximum": 100_000}}
BODIES: tuple[type[BaseModel], ...] = (api.LoginBody, api.CreateBody, api.ActionBody, api.LinkCallBody,
                                       api.SearchBody, api.CallerBody, api.KbSearchBody, api.ArticleBody,
                                       api.ArticlePatch)


@functools.cache
def document() -> dict[str, Any]:
    schemas: dict[str, Any] = {"TicketSummary": SUMMARY, "Ticket": TICKET, "Event": EVENT, "Page": PAGE,
                               "Error": ERROR, "Article": ARTICLE}
    for model in BODIES:
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    p = PREFIX
    paths = {
        f"{p}/login": {"post": _op("登录: a bearer token", ANY_OBJECT, body=api.LoginBody, public=True)},
        f"{p}/logout": {"post": _op("退出: revoke the token", ANY_OBJECT)},
        f"{p}/me": {"get": _op("who the token belongs to", ANY_OBJECT)},
        f"{p}/tickets": {"post": _op("登记: register a ticket", _ref("Ticket"), body=api.CreateBody, status="201")},
        f"{p}/tickets/search": {"post": _op("search by number, phone, category, department, state, dates, text",
                                            _ref("Page"), body=api.SearchBody)},
        f"{p}/tickets/overdue": {"get": _op("超期: tickets past their running deadline", _ref("Page"),
                                            params=[PAGE_PARAM])},
        f"{p}/tickets/soon-due": {"get": _op("即将到期: due within tickets.yaml soon_due", _ref("Page"),
                                             params=[PAGE_PARAM])},
        f"{p}/tickets/unfinished-drafts": {"get": _op("drafts left unfinished after the agent's wrap-up",
                                                      ANY_OBJECT)},
        PREFIX + "/tickets/{ref}": {"get": _op("one ticket", _ref("Ticket"), params=[REF_PARAM])},
        PREFIX + "/tickets/{ref}/history": {"get": _op("its append-only history",
                                                       {"type": "array", "items": _ref("Event")},
                                                       params=[REF_PARAM])},
        PREFIX + "/tickets/{ref}/calls": {"post": _op("attach a call (a citizen calling back)", _ref("Ticket"),
                                                      body=api.LinkCallBody, params=[REF_PARAM])},
        PREFIX + "/tickets/{ref}/actions/{action}": {"post": _op(
            "a lifecycle step: dispatch, accept, return, designate, request/approve/refuse_extension, reply, "
            "approve/reject_reply, follow_up, close, archive, urge, ...", _ref("Ticket"), body=api.ActionBody,
            params=[REF_PARAM, ACTION_PARAM])},
        f"{p}/callers/lookup": {"post": _op("a caller's open tickets and past calls", ANY_OBJECT,
                                            body=api.CallerBody)},
        f"{p}/departments": {"get": _op("承办单位", ANY_OBJECT)},
        f"{p}/kb/search": {"post": _op("知识库 full-text search (Chinese)", ANY_OBJECT, body=api.KbSearchBody)},
        f"{p}/kb/articles": {"post": _op("add an article", _ref("Article"), body=api.ArticleBody, status="201")},
        PREFIX + "/kb/articles/{id}": {
            "get": _op("one article", _ref("Article"), params=[ID_PARAM]),
            "patch": _op("change an article", _ref("Article"), body=api.ArticlePatch, params=[ID_PARAM]),
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "hotline 工单 API", "version": "1",
                 "description": "The 12345 hotline's ticket platform. Sign in with POST /api/v1/login, then send "
                                "`Authorization: Bearer <token>`."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
