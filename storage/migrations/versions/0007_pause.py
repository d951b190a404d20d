"""/pause: until when a customer wants no unprompted messages

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.models import UtcDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("telegram_users") as batch:
        batch.add_column(sa.Column("paused_until", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("telegram_users") as batch:
        batch.drop_column("paused_until")
