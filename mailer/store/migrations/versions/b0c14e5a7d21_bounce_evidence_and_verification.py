"""bounce evidence and verification

Each bounce keeps the rule and the code it was judged by, and whether the report
named a delivery of ours (signed return path or Message-ID); deliveries are
found by their Message-ID.

Revision ID: b0c14e5a7d21
Revises: 16b0a1c2d3e4
Create Date: 2026-11-24 10:00:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'b0c14e5a7d21'
down_revision: str | Sequence[str] | None = '16b0a1c2d3e4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('bounce', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rule', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('verified', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_message_id'), ['message_id'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_message_id'))
    with op.batch_alter_table('bounce', schema=None) as batch_op:
        batch_op.drop_column('verified')
        batch_op.drop_column('code')
        batch_op.drop_column('rule')
