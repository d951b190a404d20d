"""contact decisions name the message they queued, so the weekly cap counts when it was sent

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

bench/simulated_year.py found the weekly cap and SURVEY_COOLDOWN counted from the moment a message was
decided, not the moment it reached the customer: 637 of 10,000 customers got a third unprompted message
a few milliseconds short of seven days after the first. Decisions stored before this revision name no
message and keep counting from their decision time.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contact_events") as batch:
        batch.add_column(sa.Column("outbox_key", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contact_events") as batch:
        batch.drop_column("outbox_key")
