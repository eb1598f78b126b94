"""Token standing: the user's token version, the refresh token's family; usernames in
their one spelling (NFKC, case-folded).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 21:00:00
"""
import unicodedata

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('token_version', sa.Integer(), nullable=False,
                                   server_default='0'))
    with op.batch_alter_table('refresh_tokens') as batch:
        batch.add_column(sa.Column('family', sa.String(length=64), nullable=True))
        batch.create_index('ix_refresh_tokens_family', ['family'])
    # a name whose one spelling is already taken keeps its old spelling (and can only
    # be reached by it through the service, which looks names up normalised)
    conn = op.get_bind()
    users = sa.table('users', sa.column('id'), sa.column('username'))
    rows = conn.execute(sa.select(users.c.id, users.c.username)).all()
    taken = {name for _, name in rows}
    for uid, name in rows:
        norm = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
        if norm != name and norm not in taken:
            conn.execute(users.update().where(users.c.id == uid).values(username=norm))
            taken.discard(name)
            taken.add(norm)


def downgrade() -> None:
    with op.batch_alter_table('refresh_tokens') as batch:
        batch.drop_index('ix_refresh_tokens_family')
        batch.drop_column('family')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('token_version')
