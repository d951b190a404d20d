"""indexes that keep the sweep's case queries independent of how many cases a shop has closed

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

bench/sweep_scale.py found the sweep reading every case on each run: stale cards were looked for with a
whole-table scan, and the recovery question ("is the problem solved?") among all resolved cases, which
only grow. Both now go straight to the few rows that are due.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_cases_card_stale", "cases", ["card_stale"])
    op.create_index("ix_cases_status_recovery", "cases", ["status", "recovery_asked_at", "resolved_at"])


def downgrade() -> None:
    op.drop_index("ix_cases_status_recovery", table_name="cases")
    op.drop_index("ix_cases_card_stale", table_name="cases")
