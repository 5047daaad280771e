"""Reading the audit trail (writing it is the database's job: see db/audit.py)."""

from __future__ import annotations

from ..db import audit as db
from ..domain.filters import AuditFilters
from ..domain.models import AuditEvent
from ..domain.paging import decode_page_token, encode_page_token
from .context import OpsContext


async def list_audit_events(
    ctx: OpsContext, filters: AuditFilters, *, page_size: int, page_token: str
) -> tuple[list[AuditEvent], str]:
    key = decode_page_token(page_token, filters, shape=(int,))
    before_id = int(key[0]) if key else None
    async with ctx.connection() as conn:
        rows = await db.list_events(conn, filters, before_id=before_id, limit=page_size + 1)
    page = rows[:page_size]
    token = encode_page_token([page[-1].id], filters) if len(rows) > page_size else ""
    return page, token
