"""check-ins with customers who went quiet, their own rhythm and time zone

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

Existing customers get their last purchase and the median gap between their visits from the purchases
already stored, and are due for a look at once: the sweep computes when each would be silent (it knows
the settings; a migration does not) and checks in with those who already are.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.models import UtcDateTime
from surveys.silence import median_gap

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("last_purchase_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("median_purchase_gap_s", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("checkin_due_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("checkin_done_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("checkins_stopped_at", UtcDateTime(), nullable=True))
        batch.create_index("ix_customers_checkin_due_at", ["checkin_due_at"])
    op.create_table(
        "checkins",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("silent_since", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("answer", sa.String(length=16), nullable=True),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=True),
    )
    op.create_index("ix_checkins_customer_id", "checkins", ["customer_id"])
    _backfill_rhythm()


def _backfill_rhythm() -> None:
    """Each customer's last purchase and median gap, read in one ordered pass over the purchases."""
    bind = op.get_bind()
    purchases = sa.table(
        "purchases", sa.column("customer_id", sa.Integer()), sa.column("purchased_at", UtcDateTime())
    )
    customers = sa.table(
        "customers",
        sa.column("id", sa.Integer()),
        sa.column("last_purchase_at", UtcDateTime()),
        sa.column("median_purchase_gap_s", sa.Integer()),
        sa.column("checkin_due_at", UtcDateTime()),
    )
    rows = bind.execute(
        sa.select(purchases.c.customer_id, purchases.c.purchased_at).order_by(
            purchases.c.customer_id, purchases.c.purchased_at
        )
    )
    pending: list[dict[str, object]] = []
    current: int | None = None
    times: list[object] = []

    def flush_customer() -> None:
        if current is None or not times:
            return
        gap = median_gap(times)  # type: ignore[arg-type]
        pending.append(
            {
                "cid": current,
                "last": times[-1],
                "gap": int(gap.total_seconds()) if gap is not None else None,
            }
        )

    update = (
        sa.update(customers)
        .where(customers.c.id == sa.bindparam("cid"))
        .values(
            last_purchase_at=sa.bindparam("last"),
            median_purchase_gap_s=sa.bindparam("gap"),
            checkin_due_at=sa.bindparam("last"),
        )
    )
    for customer_id, purchased_at in rows:
        if customer_id != current:
            flush_customer()
            current, times = customer_id, []
            if len(pending) >= _BATCH:
                bind.execute(update, pending)
                pending = []
        times.append(purchased_at)
    flush_customer()
    if pending:
        bind.execute(update, pending)


def downgrade() -> None:
    op.drop_index("ix_checkins_customer_id", table_name="checkins")
    op.drop_table("checkins")
    with op.batch_alter_table("customers") as batch:
        batch.drop_index("ix_customers_checkin_due_at")
        batch.drop_column("checkins_stopped_at")
        batch.drop_column("checkin_done_at")
        batch.drop_column("checkin_due_at")
        batch.drop_column("median_purchase_gap_s")
        batch.drop_column("last_purchase_at")
        batch.drop_column("time_zone")
