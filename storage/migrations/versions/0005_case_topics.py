"""case topics: whether a chat is a forum, and which cases have a topic of their own

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("send_chats") as batch:
        batch.add_column(sa.Column("is_forum", sa.Boolean(), nullable=True))
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("in_topic", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("in_topic")
    with op.batch_alter_table("send_chats") as batch:
        batch.drop_column("is_forum")
