"""reminders and expiry of surveys, and the record of every contact decision

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.models import UtcDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("survey_deliveries") as batch:
        batch.add_column(sa.Column("reminder_due_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("reminded_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("expires_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("expired_at", UtcDateTime(), nullable=True))
        batch.create_index("ix_survey_deliveries_status_reminder", ["status", "reminder_due_at"])
        batch.create_index("ix_survey_deliveries_status_expires", ["status", "expires_at"])
    op.create_table(
        "contact_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("delivery_id", sa.Integer(), sa.ForeignKey("survey_deliveries.id"), nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("planned_for", UtcDateTime(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_index("ix_contact_events_customer_at", "contact_events", ["customer_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_contact_events_customer_at", table_name="contact_events")
    op.drop_table("contact_events")
    with op.batch_alter_table("survey_deliveries") as batch:
        batch.drop_index("ix_survey_deliveries_status_expires")
        batch.drop_index("ix_survey_deliveries_status_reminder")
        batch.drop_column("expired_at")
        batch.drop_column("expires_at")
        batch.drop_column("reminded_at")
        batch.drop_column("reminder_due_at")
