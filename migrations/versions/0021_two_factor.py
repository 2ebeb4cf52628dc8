"""two-factor sign-in: a user's TOTP secret, the last time step used, and the hashes of their recovery codes

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-07

Every column is nullable: nobody is enrolled by this migration. Roles that must use a second factor
(REQUIRE_2FA_ROLES) are sent to enrolment at their next sign-in.
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('totp_enabled_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('totp_last_step', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('recovery_codes', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('users') as batch:
        batch.drop_column('recovery_codes')
        batch.drop_column('totp_last_step')
        batch.drop_column('totp_enabled_at')
        batch.drop_column('totp_secret')
