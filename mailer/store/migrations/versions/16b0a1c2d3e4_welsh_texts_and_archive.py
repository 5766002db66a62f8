"""per-language topic texts; the archive's issue date, titles and published flag

Revision ID: 16b0a1c2d3e4
Revises: 81be1aa90c95
Create Date: 2026-12-02 06:16:11.084278

Sends made before this revision have no issue date or titles: the archive shows them
by their send date and first title, as before.
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '16b0a1c2d3e4'
down_revision: str | Sequence[str] | None = '81be1aa90c95'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.add_column(sa.Column('issue_date', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('titles', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('published', sa.Boolean(), server_default=sa.true(), nullable=False))

    # Existing topics get empty texts (server_default), so their pages look as before.
    with op.batch_alter_table('topic', schema=None) as batch_op:
        batch_op.add_column(sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=200), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('label_cy', sqlmodel.sql.sqltypes.AutoString(length=200), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('description_cy', sqlmodel.sql.sqltypes.AutoString(), server_default='',
                                      nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('topic', schema=None) as batch_op:
        batch_op.drop_column('description_cy')
        batch_op.drop_column('label_cy')
        batch_op.drop_column('label')

    with op.batch_alter_table('send', schema=None) as batch_op:
        batch_op.drop_column('published')
        batch_op.drop_column('titles')
        batch_op.drop_column('issue_date')
