"""late-payment charges and client bank accounts: reference rates, late-payment terms, charge accruals and
waivers, two journal accounts and three transaction kinds; the account each client is remitted to per currency

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-10

Interest and compensation charged to debtors post to the journal on two accounts of their own (`interest_due`,
`late_charges`) with kinds `interest_charged`, `late_fee_charged` and `charges_waived`. The CHECK constraints of
`journal_entries.account` and `journal_transactions.kind` are widened: on PostgreSQL re-created NOT VALID then
validated (no long exclusive lock); on SQLite the table's stored SQL is edited in place with `writable_schema`,
the procedure SQLite documents for changes that do not touch stored rows (a wider CHECK accepts every row the
narrower one did), so the journal is not rebuilt and its triggers stay. `journal_month_totals` keeps only the
accounts the KPIs read (0015), neither of the new ones, so its trigger is unchanged.

The reference rates are seeded with the central banks' published decisions since 2016 (ECB main refinancing
rate, Bank of England Bank Rate); agency admins keep the table current.
"""

from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

from provider.core.schema_rules import change_check, enable_rls, key_columns, key_constraints

# revision identifiers, used by Alembic.
revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

OLD_ACCOUNTS = "'receivable', 'unapplied', 'credits', 'cash_agency', 'cash_client', 'sales', 'write_off', 'adjustment'"
NEW_ACCOUNTS = OLD_ACCOUNTS + ", 'interest_due', 'late_charges'"
OLD_KINDS = (
    "'invoice_placed', 'payment_received', 'allocation', 'credit_note_issued', 'write_off', 'adjustment', 'reversal'"
)
NEW_KINDS = OLD_KINDS + ", 'interest_charged', 'late_fee_charged', 'charges_waived'"
CHECKS = (
    ("journal_entries", "ck_journal_entries_account", "account", OLD_ACCOUNTS, NEW_ACCOUNTS),
    ("journal_transactions", "ck_journal_transactions_kind", "kind", OLD_KINDS, NEW_KINDS),
)

# (effective from, percent) as published by the central banks
ECB_MRO = [
    ("2016-03-16", "0.00"),
    ("2022-07-27", "0.50"),
    ("2022-09-14", "1.25"),
    ("2022-11-02", "2.00"),
    ("2022-12-21", "2.50"),
    ("2023-02-08", "3.00"),
    ("2023-03-22", "3.50"),
    ("2023-05-10", "3.75"),
    ("2023-06-21", "4.00"),
    ("2023-08-02", "4.25"),
    ("2023-09-20", "4.50"),
    ("2024-06-12", "4.25"),
    ("2024-09-18", "3.65"),
    ("2024-10-23", "3.40"),
    ("2024-12-18", "3.15"),
    ("2025-02-05", "2.90"),
    ("2025-03-12", "2.65"),
    ("2025-04-23", "2.40"),
    ("2025-06-11", "2.15"),
]
BOE_BASE = [
    ("2016-08-04", "0.25"),
    ("2017-11-02", "0.50"),
    ("2018-08-02", "0.75"),
    ("2020-03-11", "0.25"),
    ("2020-03-19", "0.10"),
    ("2021-12-16", "0.25"),
    ("2022-02-03", "0.50"),
    ("2022-03-17", "0.75"),
    ("2022-05-05", "1.00"),
    ("2022-06-16", "1.25"),
    ("2022-08-04", "1.75"),
    ("2022-09-22", "2.25"),
    ("2022-11-03", "3.00"),
    ("2022-12-15", "3.50"),
    ("2023-02-02", "4.00"),
    ("2023-03-23", "4.25"),
    ("2023-05-11", "4.50"),
    ("2023-06-22", "5.00"),
    ("2023-08-03", "5.25"),
    ("2024-08-01", "5.00"),
    ("2024-11-07", "4.75"),
    ("2025-02-06", "4.50"),
    ("2025-05-08", "4.25"),
    ("2025-08-07", "4.00"),
]


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _widen(table: str, name: str, column: str, old: str, new: str) -> None:
    change_check(table, name, column, old, new)  # the procedure this migration first wrote, kept in schema_rules


def upgrade():
    for table, name, column, old, new in CHECKS:
        _widen(table, name, column, old, new)

    rates = op.create_table(
        "reference_rates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("series", sa.String(length=16), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("rate_bp", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("series IN ('ecb_mro', 'boe_base')", name=op.f("ck_reference_rates_series")),
        sa.CheckConstraint("rate_bp > -10000 AND rate_bp < 100000", name=op.f("ck_reference_rates_rate_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_rates")),
        sa.UniqueConstraint("series", "effective_from", name=op.f("uq_reference_rates_series_effective_from")),
    )
    now = datetime.now(UTC) if _postgresql() else datetime.now(UTC).replace(tzinfo=None)
    rows = [
        {
            "series": series,
            "effective_from": date.fromisoformat(day),
            "rate_bp": round(float(pct) * 100),
            "note": "published rate (seeded)",
            "updated_at": now,
        }
        for series, table in (("ecb_mro", ECB_MRO), ("boe_base", BOE_BASE))
        for day, pct in table
    ]
    op.bulk_insert(rates, rows)

    op.create_table(
        "late_payment_terms",
        *key_columns(),
        sa.Column("terms_id", sa.BigInteger(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("contract_rate_bp", sa.Integer(), nullable=False),
        sa.Column("day_count", sa.String(length=8), nullable=False),
        sa.Column("compensation", sa.String(length=12), nullable=False),
        sa.Column("fixed_minor", sa.BigInteger(), nullable=False),
        sa.Column("fixed_currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "basis IN ('none', 'statutory_eu', 'statutory_uk', 'contract')", name=op.f("ck_late_payment_terms_basis")
        ),
        sa.CheckConstraint(
            "compensation IN ('none', 'eu_flat', 'uk_banded', 'fixed')", name=op.f("ck_late_payment_terms_compensation")
        ),
        sa.CheckConstraint(
            "contract_rate_bp >= 0 AND contract_rate_bp <= 10000",
            name=op.f("ck_late_payment_terms_contract_rate_range"),
        ),
        sa.CheckConstraint("day_count IN ('act_365', 'act_360')", name=op.f("ck_late_payment_terms_day_count")),
        sa.CheckConstraint("fixed_minor >= 0", name=op.f("ck_late_payment_terms_fixed_not_negative")),
        sa.ForeignKeyConstraint(
            ["client_id", "terms_id"],
            ["contract_terms.client_id", "contract_terms.id"],
            name=op.f("fk_late_payment_terms_client_id_contract_terms"),
        ),
        *key_constraints("late_payment_terms"),
        sa.UniqueConstraint("client_id", "effective_from", name=op.f("uq_late_payment_terms_client_id_effective_from")),
        sa.UniqueConstraint("client_id", "terms_id", name=op.f("uq_late_payment_terms_client_id_terms_id")),
    )
    enable_rls("late_payment_terms")

    op.create_table(
        "charge_accruals",
        *key_columns(),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("through_date", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('interest', 'compensation')", name=op.f("ck_charge_accruals_kind")),
        sa.CheckConstraint("amount_minor <> 0", name=op.f("ck_charge_accruals_amount_nonzero")),
        sa.ForeignKeyConstraint(
            ["client_id", "invoice_id"],
            ["invoices.client_id", "invoices.id"],
            name=op.f("fk_charge_accruals_client_id_invoices"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id", "transaction_id"],
            ["journal_transactions.client_id", "journal_transactions.id"],
            name=op.f("fk_charge_accruals_client_id_journal_transactions"),
        ),
        *key_constraints("charge_accruals"),
        sa.UniqueConstraint(
            "client_id",
            "invoice_id",
            "kind",
            "through_date",
            name=op.f("uq_charge_accruals_client_id_invoice_id_kind_through_date"),
        ),
    )
    enable_rls("charge_accruals")

    op.create_table(
        "charge_waivers",
        *key_columns(),
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("stops_accrual", sa.Boolean(), nullable=False),
        sa.Column("transaction_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("waived_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name=op.f("ck_charge_waivers_amount_positive")),
        sa.ForeignKeyConstraint(
            ["client_id", "invoice_id"],
            ["invoices.client_id", "invoices.id"],
            name=op.f("fk_charge_waivers_client_id_invoices"),
        ),
        sa.ForeignKeyConstraint(
            ["client_id", "transaction_id"],
            ["journal_transactions.client_id", "journal_transactions.id"],
            name=op.f("fk_charge_waivers_client_id_journal_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_charge_waivers_user_id_users"), ondelete="SET NULL"
        ),
        *key_constraints("charge_waivers"),
    )
    with op.batch_alter_table("charge_waivers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_charge_waivers_client_id_invoice_id"), ["client_id", "invoice_id"], unique=False
        )
    enable_rls("charge_waivers")
    _bank_accounts()
    _payouts_and_trust()


BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _payouts_and_trust() -> None:
    """Four eyes and payout files of remittance runs (client-keyed); the agency's trust accounts, their
    statements' balances and lines, and the daily trust reconciliation (agency-level, like background_jobs)."""
    op.create_table(
        "run_payouts",
        *key_columns(),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("payee_name", sa.String(length=70), nullable=False),
        sa.Column("payee_account", sa.String(length=40), nullable=False),
        sa.Column("prepared_by_id", sa.BigInteger(), nullable=True),
        sa.Column("prepared_by", sa.String(length=254), nullable=False),
        sa.Column("prepared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_by_id", sa.BigInteger(), nullable=True),
        sa.Column("approved_by", sa.String(length=254), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kind", sa.String(length=5), nullable=False),
        sa.Column("message_id", sa.String(length=35), nullable=False),
        sa.Column("end_to_end_id", sa.String(length=35), nullable=False),
        sa.Column("file_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("filename", sa.String(length=120), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("paid_via", sa.String(length=10), nullable=False),
        sa.Column("bank_line_ref", sa.String(length=64), nullable=False),
        sa.CheckConstraint("kind IN ('sepa', 'nacha', 'csv', 'none')", name=op.f("ck_run_payouts_kind")),
        sa.ForeignKeyConstraint(
            ["client_id", "run_id"],
            ["remittance_runs.client_id", "remittance_runs.id"],
            name=op.f("fk_run_payouts_client_id_remittance_runs"),
        ),
        *key_constraints("run_payouts"),
        sa.UniqueConstraint("client_id", "run_id", name=op.f("uq_run_payouts_client_id_run_id")),
        sa.UniqueConstraint("client_id", "end_to_end_id", name=op.f("uq_run_payouts_client_id_end_to_end_id")),
    )
    enable_rls("run_payouts")
    op.create_table(
        "trust_accounts",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("name", sa.String(length=70), nullable=False),
        sa.Column("account", sa.String(length=34), nullable=False),
        sa.Column("bic", sa.String(length=11), nullable=False),
        sa.Column("routing_number", sa.String(length=9), nullable=False),
        sa.Column("ach_company_id", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_accounts")),
        sa.UniqueConstraint("currency", name=op.f("uq_trust_accounts_currency")),
        sa.UniqueConstraint("account", name=op.f("uq_trust_accounts_account")),
    )
    op.create_table(
        "trust_statement_balances",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("trust_account_id", sa.BigInteger(), nullable=False),
        sa.Column("on_day", sa.Date(), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(length=254), nullable=False),
        sa.ForeignKeyConstraint(
            ["trust_account_id"],
            ["trust_accounts.id"],
            name=op.f("fk_trust_statement_balances_trust_account_id_trust_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_statement_balances")),
        sa.UniqueConstraint(
            "trust_account_id", "on_day", name=op.f("uq_trust_statement_balances_trust_account_id_on_day")
        ),
    )
    op.create_table(
        "trust_bank_lines",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("trust_account_id", sa.BigInteger(), nullable=False),
        sa.Column("line_ref", sa.String(length=64), nullable=False),
        sa.Column("bank_ref", sa.String(length=64), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("refs", sa.String(length=500), nullable=False),
        sa.Column("run_client_id", sa.BigInteger(), nullable=True),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trust_account_id"],
            ["trust_accounts.id"],
            name=op.f("fk_trust_bank_lines_trust_account_id_trust_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_bank_lines")),
        sa.UniqueConstraint("line_ref", name=op.f("uq_trust_bank_lines_line_ref")),
    )
    op.create_table(
        "trust_reconciliations",
        sa.Column("id", BIGID, nullable=False),
        sa.Column("on_day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("bank_minor", sa.BigInteger(), nullable=True),
        sa.Column("bank_on", sa.Date(), nullable=True),
        sa.Column("ledger_minor", sa.BigInteger(), nullable=False),
        sa.Column("clients_minor", sa.BigInteger(), nullable=False),
        sa.Column("held_minor", sa.BigInteger(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('agrees', 'differs', 'no_statement')", name=op.f("ck_trust_reconciliations_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trust_reconciliations")),
        sa.UniqueConstraint("on_day", "currency", name=op.f("uq_trust_reconciliations_on_day_currency")),
    )


def _bank_accounts() -> None:
    op.create_table(
        "client_bank_accounts",
        *key_columns(),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("holder", sa.String(length=70), nullable=False),
        sa.Column("iban", sa.String(length=34), nullable=False),
        sa.Column("bic", sa.String(length=11), nullable=False),
        sa.Column("routing_number", sa.String(length=9), nullable=False),
        sa.Column("account_number", sa.String(length=17), nullable=False),
        sa.Column("account_type", sa.String(length=8), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "account_type IN ('checking', 'savings')", name=op.f("ck_client_bank_accounts_account_type")
        ),
        *key_constraints("client_bank_accounts"),
        sa.UniqueConstraint("client_id", "currency", name=op.f("uq_client_bank_accounts_client_id_currency")),
    )
    enable_rls("client_bank_accounts")


def downgrade():
    for table in ("trust_reconciliations", "trust_bank_lines", "trust_statement_balances", "trust_accounts"):
        op.drop_table(table)
    op.drop_table("run_payouts")
    op.drop_table("client_bank_accounts")
    charged = (
        op.get_bind()
        .execute(sa.text("SELECT count(*) FROM journal_entries WHERE account IN ('interest_due', 'late_charges')"))
        .scalar_one()
    )
    if charged:  # the journal is append-only: a database with charges posted cannot go back
        raise RuntimeError(
            f"{charged} journal entries of late-payment charges exist; this database cannot be downgraded"
        )
    with op.batch_alter_table("charge_waivers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_charge_waivers_client_id_invoice_id"))
    op.drop_table("charge_waivers")
    op.drop_table("charge_accruals")
    op.drop_table("late_payment_terms")
    op.drop_table("reference_rates")
    for table, name, column, old, new in CHECKS:
        _widen(table, name, column, new, old)
