"""communications: messages (e-mail, letters) stored as rendered, their history and attachments, suppressed
addresses, sending identities per client, and the inbound mail (replies, bounces, unmatched)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07

Client-owned tables are client-keyed (provider.core.schema_rules): client_id leads the key, composite foreign
keys, row-level security without subqueries. `inbound_mail` is the agency's (unmatched mail has no client).
"""

import sqlalchemy as sa
from alembic import op

from provider.core.schema_rules import enable_rls, key_columns, key_constraints

# revision identifiers, used by Alembic.
revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

CLIENT_TABLES = ("comm_messages", "comm_attachments", "comm_events", "comm_suppressed_addresses", "comm_identities")


def _ts(name, nullable=True):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _message_fk(table):
    return sa.ForeignKeyConstraint(
        ["client_id", "message_id"],
        ["comm_messages.client_id", "comm_messages.id"],
        name=f"fk_{table}_client_id_comm_messages",
        ondelete="CASCADE",
    )


def upgrade():
    json = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
    op.create_table(
        "comm_messages",
        *key_columns(),
        sa.Column("debtor_id", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("purpose", sa.String(40), nullable=False),
        sa.Column("to_address", sa.String(320), nullable=False),
        sa.Column("to_name", sa.String(200), nullable=False),
        sa.Column("from_address", sa.String(320), nullable=False),
        sa.Column("from_name", sa.String(200), nullable=False),
        sa.Column("reply_to", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column("language", sa.String(12), nullable=False),
        sa.Column("address_lines", json, nullable=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at"),
        sa.Column("last_error", sa.String(500), nullable=False),
        _ts("sending_since"),
        _ts("sent_at"),
        _ts("bounced_at"),
        _ts("replied_at"),
        _ts("dispatched_at"),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("rfc_message_id", sa.String(250), nullable=False),
        sa.Column("source_type", sa.String(40), nullable=False),
        sa.Column("source_id", sa.String(80), nullable=False),
        sa.Column("created_by", sa.String(254), nullable=False),
        _ts("created_at", False),
        _ts("updated_at", False),
        *key_constraints("comm_messages"),
        sa.CheckConstraint("channel IN ('email', 'letter')", name=op.f("ck_comm_messages_channel")),
        sa.CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'failed', 'bounced', 'printed', 'dispatched')",
            name=op.f("ck_comm_messages_status"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id", "debtor_id"],
            ["debtors.client_id", "debtors.id"],
            name="fk_comm_messages_client_id_debtors",
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint("client_id", "dedupe_key", name=op.f("uq_comm_messages_client_id_dedupe_key")),
    )
    with op.batch_alter_table("comm_messages") as batch_op:
        batch_op.create_index(
            "ix_comm_messages_client_id_debtor_id_created_at", ["client_id", "debtor_id", "created_at"]
        )
        batch_op.create_index("ix_comm_messages_status_next_attempt_at", ["status", "next_attempt_at"])
        batch_op.create_index("ix_comm_messages_client_id_status_created_at", ["client_id", "status", "created_at"])
        batch_op.create_index("ix_comm_messages_created_at", ["created_at"])
        batch_op.create_index(
            "ix_comm_messages_client_id_source_type_source_id", ["client_id", "source_type", "source_id"]
        )

    op.create_table(
        "comm_attachments",
        *key_columns(),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("mimetype", sa.String(100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        _ts("created_at", False),
        *key_constraints("comm_attachments"),
        _message_fk("comm_attachments"),
    )
    op.create_index("ix_comm_attachments_client_id_message_id", "comm_attachments", ["client_id", "message_id"])

    op.create_table(
        "comm_events",
        *key_columns(),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(1000), nullable=False),
        sa.Column("inbound_id", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(254), nullable=False),
        _ts("occurred_at", False),
        *key_constraints("comm_events"),
        _message_fk("comm_events"),
    )
    op.create_index(
        "ix_comm_events_client_id_message_id_occurred_at", "comm_events", ["client_id", "message_id", "occurred_at"]
    )

    op.create_table(
        "comm_suppressed_addresses",
        *key_columns(),
        sa.Column("address", sa.String(320), nullable=False),
        sa.Column("kind", sa.String(14), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        _ts("created_at", False),
        *key_constraints("comm_suppressed_addresses"),
        sa.CheckConstraint("kind IN ('bounced', 'unsubscribed')", name=op.f("ck_comm_suppressed_addresses_kind")),
        sa.UniqueConstraint("client_id", "address", name=op.f("uq_comm_suppressed_addresses_client_id_address")),
    )

    op.create_table(
        "comm_identities",
        *key_columns(),
        sa.Column("from_name", sa.String(200), nullable=False),
        sa.Column("from_address", sa.String(320), nullable=False),
        sa.Column("reply_to", sa.String(320), nullable=False),
        _ts("updated_at", False),
        *key_constraints("comm_identities"),
        sa.UniqueConstraint("client_id", name=op.f("uq_comm_identities_client_id")),
    )

    op.create_table(
        "inbound_mail",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        _ts("received_at", False),
        sa.Column("mail_from", sa.String(320), nullable=False),
        sa.Column("rcpt_to", sa.String(320), nullable=False),
        sa.Column("from_header", sa.String(400), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        _ts("processed_at"),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("kind IN ('reply', 'bounce', 'unmatched')", name=op.f("ck_inbound_mail_kind")),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_inbound_mail_client_id_clients"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_mail")),
    )
    op.create_index("ix_inbound_mail_kind_received_at", "inbound_mail", ["kind", "received_at"])
    op.create_index("ix_inbound_mail_client_id_received_at", "inbound_mail", ["client_id", "received_at"])

    for table in CLIENT_TABLES:
        enable_rls(table)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in CLIENT_TABLES:
            op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.drop_table("inbound_mail")
    op.drop_table("comm_identities")
    op.drop_table("comm_suppressed_addresses")
    op.drop_table("comm_events")
    op.drop_table("comm_attachments")
    op.drop_table("comm_messages")
