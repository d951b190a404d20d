"""indexes for the managers' reports: a period's answers, surveys, skipped contacts and revenue

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

bench/summary_scale.py (1,000,000 answers, 200,000 customers) found the report's statements scanning
whole tables: the year's revenue per customer walked every order through the customer index and then
the table, surveys asked and reminded in a week read every delivery, skipped contacts every decision.
The answers' time index becomes one that also holds the type and category, so a week's NPS is counted
from the index alone; the purchases' customer index becomes one that also holds time and amount.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_purchases_customer_time_amount", "purchases", ["customer_id", "purchased_at", "amount"]
    )
    op.drop_index("ix_purchases_customer_id", table_name="purchases")
    op.create_index("ix_survey_deliveries_started_at", "survey_deliveries", ["started_at"])
    op.create_index("ix_survey_deliveries_reminded_at", "survey_deliveries", ["reminded_at"])
    op.create_index(
        "ix_answers_created_type_category", "answers", ["created_at", "question_type", "nps_category", "skipped"]
    )
    op.drop_index("ix_answers_created_at", table_name="answers")
    op.create_index("ix_contact_events_kind_outcome_at", "contact_events", ["kind", "outcome", "at"])


def downgrade() -> None:
    op.drop_index("ix_contact_events_kind_outcome_at", table_name="contact_events")
    op.create_index("ix_answers_created_at", "answers", ["created_at"])
    op.drop_index("ix_answers_created_type_category", table_name="answers")
    op.drop_index("ix_survey_deliveries_reminded_at", table_name="survey_deliveries")
    op.drop_index("ix_survey_deliveries_started_at", table_name="survey_deliveries")
    op.create_index("ix_purchases_customer_id", "purchases", ["customer_id"])
    op.drop_index("ix_purchases_customer_time_amount", table_name="purchases")
