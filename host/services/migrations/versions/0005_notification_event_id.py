"""Notifications: the event bus's event id, unique, so a notifier that gets an event
again (at-least-once delivery) does not store it twice.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 19:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notifications') as batch:
        batch.add_column(sa.Column('event_id', sa.String(length=64), nullable=True))
        batch.create_index('uq_notifications_event_id', ['event_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('notifications') as batch:
        batch.drop_index('uq_notifications_event_id')
        batch.drop_column('event_id')
