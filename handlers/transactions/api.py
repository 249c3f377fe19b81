"""The back office's HTTP feed: PUT and GET /api/v1/transactions/{ref} on the admin API.

PUT body (JSON object): service, status (required), note_en, note_ar, msisdns, updated_at
(optional).  A field left out keeps what is stored; a note set to null or "" is removed.  Answers
201 when the transaction was created, 200 when it was updated or already so, 400 with the field
for bad input, 409 when updated_at is older than the stored update.  Numbers are shown in full to
admin tokens only, masked for read-only ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handlers.transactions.model import Detail
from handlers.transactions.records import RecordError, parse_record
from handlers.transactions.service import TransactionService, UpsertOutcome
from smsgw.admin.api import AdminRoute, ApiCall, ApiError, JsonResponse, Response, Role
from smsgw.log import excerpt, mask_msisdn

__all__ = ["PATH", "transaction_routes"]

PATH = "/api/v1/transactions/{ref}"


def transaction_routes(service: TransactionService, clock: Callable[[], float]) -> list[AdminRoute]:
    """The feed's routes, bound to `service`; `clock` stamps "now" for input validation."""
    config = service.config

    def reference(call: ApiCall) -> str:
        ref = config.reference.parse(call.params["ref"])
        if ref is None:
            raise ApiError(400, "invalid_reference",
                           f"{excerpt(call.params['ref'])} is not a reference like {config.reference.example()}",
                           field="ref")
        return ref

    async def put(call: ApiCall) -> Response:
        ref = reference(call)
        body = call.json_object()
        if "ref" in body:
            raise ApiError(400, "invalid_field", "the reference belongs in the URL, not in the body", field="ref")
        try:
            record = parse_record({**body, "ref": ref}, config, clock())
        except RecordError as exc:
            raise ApiError(400, "invalid_field", exc.reason, field=exc.problems[0][0]) from None
        assert call.principal is not None  # a write route: the server authenticated it
        result = await service.upsert(record, f"api:{call.principal.name}")
        if result.outcome is UpsertOutcome.STALE:
            raise ApiError(409, "stale", f"updated_at is {result.reason}; nothing was changed", field="updated_at")
        if result.outcome is UpsertOutcome.REJECTED:
            field, _, message = result.reason.partition(": ")
            raise ApiError(400, "invalid_field", result.reason, field=field if message else None)
        detail = await service.get(ref)
        assert detail is not None
        payload = _detail(detail, service, reveal=True)
        payload["result"] = result.outcome.value
        payload["notifications"] = result.notifications
        return JsonResponse(201 if result.outcome is UpsertOutcome.INSERTED else 200, payload)

    async def get(call: ApiCall) -> Response:
        ref = reference(call)
        detail = await service.get(ref)
        if detail is None:
            raise ApiError(404, "not_found", f"no transaction {ref}")
        reveal = call.principal is not None and call.principal.role is Role.ADMIN
        return JsonResponse(200, _detail(detail, service, reveal=reveal))

    return [AdminRoute("PUT", PATH, put), AdminRoute("GET", PATH, get)]


def _detail(detail: Detail, service: TransactionService, *, reveal: bool) -> dict[str, Any]:
    config = service.config
    txn = detail.transaction
    show = (lambda m: m) if reveal else mask_msisdn
    status = config.statuses.get(txn.status)
    service_name = config.service_types.get(txn.service)
    return {
        "ref": txn.ref,
        "service": txn.service,
        "service_name": {"en": service_name.en, "ar": service_name.ar} if service_name else None,
        "status": txn.status,
        "status_name": {"en": status.name.en, "ar": status.name.ar} if status else None,
        "open": bool(status and status.open),
        "note_en": txn.note_en,
        "note_ar": txn.note_ar,
        "updated_at": config.iso_time(txn.updated_at),
        "created_at": config.iso_time(txn.created_at),
        "msisdns": [show(m) for m in detail.msisdns],
        "notifications_off": [show(m) for m in detail.opted_out],
        "changes": [
            {
                "from": c.old_status,
                "to": c.new_status,
                "updated_at": config.iso_time(c.updated_at),
                "changed_at": config.iso_time(c.changed_at),
                "source": c.source,
            }
            for c in detail.changes
        ],
    }
