"""reports that must reach managers: the weekly summary exactly once per chat and week, /report, /export

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

The weekly summary's occurrence is kept in the database, not in the scheduler's memory: a unique key per
occurrence and manager chat makes it one summary whether the bot restarted, was down at the moment (it is
sent on start, marked late), or runs as several processes. Reports are built outside the transaction
that asks for them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.models import UtcDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(length=96), nullable=False, unique=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("period_start", UtcDateTime(), nullable=False),
        sa.Column("period_end", UtcDateTime(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("due_for", UtcDateTime(), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", UtcDateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("done_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_report_requests_status_id", "report_requests", ["status", "id"])


def downgrade() -> None:
    op.drop_index("ix_report_requests_status_id", table_name="report_requests")
    op.drop_table("report_requests")
