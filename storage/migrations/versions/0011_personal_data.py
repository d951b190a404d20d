"""customers can have their personal data erased, and raw updates are pruned after a retention time

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08

Issue 9 ("customers stay in control of their data"): ``/forget`` and ``kundenpuls forget`` keep a
customer's row as an anonymous one (its scores and revenue still count) and mark it erased, so that the
sweep never contacts it again. The sweep deletes handled raw updates older than RAW_UPDATE_RETENTION,
oldest first, which needs their arrival time indexed: without it every sweep would read every stored
update to find that none is old enough.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.models import UtcDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("erased_at", UtcDateTime(), nullable=True))
    op.create_index("ix_inbound_updates_received_at", "inbound_updates", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_inbound_updates_received_at", table_name="inbound_updates")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("erased_at")
