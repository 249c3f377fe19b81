"""Municipal transaction status by SMS, fed by the back office (CSV import and the admin API).

Plugs into the gateway as `FEATURE`: the "transactions" handler (STATUS/حالة, MY/طلباتي,
STOP/إيقاف, START/تشغيل, routed in gateway.toml on the municipality's short code), its tables
(schema component "transactions"), the dispatcher of notifications left pending by
`smsgw transactions import`, and PUT/GET /api/v1/transactions/{ref} on the admin API.
Wording, statuses and limits are in config/transactions.toml next to gateway.toml.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from twisted.application.service import IService

from handlers.transactions.api import transaction_routes
from handlers.transactions.config import CONFIG_FILE, load_transactions_config
from handlers.transactions.dispatcher import NoticeDispatcher
from handlers.transactions.handler import TransactionsHandler
from handlers.transactions.schema import SCHEMA
from handlers.transactions.service import Outbox, TransactionService
from smsgw.admin.api import AdminRoute
from smsgw.feature import Feature, ServiceContext

__all__ = ["FEATURE", "HANDLER"]

#: The handler name routes use.
HANDLER = "transactions"


def _handler(ctx: ServiceContext) -> TransactionsHandler:
    config = load_transactions_config(ctx.config_dir / CONFIG_FILE, carriers=ctx.short_codes)
    outbox = Outbox(new_mt=ctx.new_mt, enqueue=ctx.enqueue, carriers=ctx.short_codes)
    return TransactionsHandler(TransactionService(ctx.store, config, ctx.now, outbox))


def _services(ctx: ServiceContext, handlers: Mapping[str, Any]) -> Sequence[IService]:
    service: TransactionService = handlers[HANDLER].service
    return [NoticeDispatcher(service, ctx.clock, service.config.notifications.poll_s, runs_jobs=ctx.runs_jobs)]


def _admin_routes(ctx: ServiceContext, handlers: Mapping[str, Any]) -> Sequence[AdminRoute]:
    return transaction_routes(handlers[HANDLER].service, ctx.now)


def _check_config(config_dir: Path, short_codes: Mapping[str, tuple[str, ...]]) -> Sequence[Path]:
    # Not a FeatureFile: its check needs the carriers' short codes, and a missing file is allowed.
    path = config_dir / CONFIG_FILE
    load_transactions_config(path, carriers=short_codes)
    return [path]


FEATURE = Feature(
    name="transactions",
    handlers={HANDLER: _handler},
    schema=SCHEMA,
    services=_services,
    admin_routes=_admin_routes,
    check_config=_check_config,
)
