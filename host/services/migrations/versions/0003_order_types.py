"""Order types: the parameters of stop-limit, trailing stop, iceberg, OCO and bracket
orders, a synthetic order's trigger state, a modify's priority, and the execution
report's id, venue, liquidity flag and fee.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 21:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # batch mode: SQLite cannot alter a column in place (it rebuilds the table)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.alter_column('type', existing_type=sa.String(length=8),
                              type_=sa.String(length=16), existing_nullable=False)
        batch_op.add_column(sa.Column('trail_amount', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('trail_bps', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('trail_ref', sa.String(length=5), nullable=True))
        batch_op.add_column(sa.Column('display_qty', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('display_jitter', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('take_profit', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('stop_loss', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('group_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('parent_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('triggered', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('priority', sa.String(length=8), nullable=True))
        batch_op.create_index('ix_orders_group_id', ['group_id'], unique=False)
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('exec_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('venue', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('liquidity', sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column('fee', sa.BigInteger(), nullable=True))
        batch_op.create_index('uq_executions_exec_id', ['exec_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_index('uq_executions_exec_id')
        for name in ('fee', 'liquidity', 'venue', 'exec_id'):
            batch_op.drop_column(name)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_group_id')
        for name in ('priority', 'triggered', 'parent_id', 'group_id', 'stop_loss',
                     'take_profit', 'display_jitter', 'display_qty', 'trail_ref',
                     'trail_bps', 'trail_amount'):
            batch_op.drop_column(name)
        batch_op.alter_column('type', existing_type=sa.String(length=16),
                              type_=sa.String(length=8), existing_nullable=False)
