"""delivery.reply_code: the server's SMTP reply code in a column of its own

Revision ID: d3l1c0de0012
Revises: e17a0welc0me
Create Date: 2026-12-02 09:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'd3l1c0de0012'
down_revision: str | Sequence[str] | None = 'e17a0welc0me'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column, and fill it from the replies recorded so far: they start with their code."""
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_code', sa.Integer(), nullable=True))
    digits = " AND ".join(f"substr(reply, {n}, 1) BETWEEN '0' AND '9'" for n in (1, 2, 3))
    op.execute(f"UPDATE delivery SET reply_code = CAST(substr(reply, 1, 3) AS INTEGER) "
               f"WHERE substr(reply, 1, 1) BETWEEN '2' AND '5' AND {digits} AND substr(reply, 4, 1) = ' '")


def downgrade() -> None:
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_column('reply_code')
