"""RFQ: users' requests for quote and the venues' firm quotes for them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'rfqs',
        sa.Column('id', BigId, primary_key=True),
        sa.Column('user_id', BigId, sa.ForeignKey('users.id'), nullable=False),
        sa.Column('symbol', sa.String(length=8), nullable=False),
        sa.Column('side', sa.String(length=4), nullable=True),
        sa.Column('qty', sa.BigInteger(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False))
    op.create_index('ix_rfqs_user_id_id', 'rfqs', ['user_id', 'id'])
    op.create_table(
        'rfq_quotes',
        sa.Column('id', BigId, primary_key=True),
        sa.Column('rfq_id', BigId, sa.ForeignKey('rfqs.id'), nullable=False),
        sa.Column('venue', sa.String(length=16), nullable=False),
        sa.Column('venue_quote_id', sa.String(length=40), nullable=False),
        sa.Column('provider', sa.String(length=16), nullable=False),
        sa.Column('bid', sa.BigInteger(), nullable=False),
        sa.Column('bid_size', sa.BigInteger(), nullable=False),
        sa.Column('ask', sa.BigInteger(), nullable=False),
        sa.Column('ask_size', sa.BigInteger(), nullable=False),
        sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('side', sa.String(length=4), nullable=True),
        sa.Column('order_id', BigId, sa.ForeignKey('orders.id'), nullable=True),
        sa.UniqueConstraint('venue', 'venue_quote_id', name='uq_rfq_quotes_venue_quote'))
    op.create_index('ix_rfq_quotes_rfq_id', 'rfq_quotes', ['rfq_id'])


def downgrade() -> None:
    op.drop_index('ix_rfq_quotes_rfq_id', table_name='rfq_quotes')
    op.drop_table('rfq_quotes')
    op.drop_index('ix_rfqs_user_id_id', table_name='rfqs')
    op.drop_table('rfqs')
