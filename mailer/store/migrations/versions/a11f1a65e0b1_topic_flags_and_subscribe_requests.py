"""topic flags (default, public) and subscribe requests kept apart until confirmed

Revision ID: a11f1a65e0b1
Revises: b0c14e5a7d21
Create Date: 2026-12-02 06:14:45.559348

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'a11f1a65e0b1'
down_revision: str | Sequence[str] | None = 'b0c14e5a7d21'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('subscriberequest',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('topics', sa.Text(), server_default='', nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('consent_text', sa.Text(), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscriber.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('subscriberequest', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscriberequest_subscriber_id'), ['subscriber_id'], unique=False)
    # Existing topics stay as they were: public, and nobody is enrolled by default.
    with op.batch_alter_table('topic', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_default', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('public', sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('topic', schema=None) as batch_op:
        batch_op.drop_column('public')
        batch_op.drop_column('is_default')

    with op.batch_alter_table('subscriberequest', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscriberequest_subscriber_id'))
    op.drop_table('subscriberequest')
