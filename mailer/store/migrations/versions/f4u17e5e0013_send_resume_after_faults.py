"""send.resume_at, send.fault_pauses: the runner resumes a send the engine paused after faults

Revision ID: f4u17e5e0013
Revises: d3l1c0de0012
Create Date: 2026-12-03 09:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'f4u17e5e0013'
down_revision: str | Sequence[str] | None = 'd3l1c0de0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Sends paused before this get no automatic resume: a person resumes them, as they expected."""
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resume_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('fault_pauses', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.drop_column('fault_pauses')
        batch_op.drop_column('resume_at')
