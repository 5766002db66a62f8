"""welcome sends and link counts

Revision ID: e17a0welc0me
Revises: a11f1a65e0b1
Create Date: 2026-12-02 06:13:49.504765

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel  # noqa: F401  (autogenerate writes sqlmodel.sql.sqltypes.AutoString)
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'e17a0welc0me'
down_revision: str | Sequence[str] | None = 'a11f1a65e0b1'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('linkcount',
    sa.Column('send_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['send_id'], ['send.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('send_id', 'position')
    )
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='issue', nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.drop_column('kind')
    op.drop_table('linkcount')
