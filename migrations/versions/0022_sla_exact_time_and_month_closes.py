"""sla: exact business time, the pause instant, and months whose compliance has been reported

Revision ID: 0022
Revises: 0019
Create Date: 2026-12-08

- `sla_clocks.allowance_s` / `elapsed_s` (whole seconds, truncated per working day) become `allowance_us` /
  `elapsed_us` (exact microseconds; existing values are multiplied). Renamed in place (SQLite renames the
  column inside its CHECK constraint too), so no table is rebuilt.
- `sla_clocks.paused_at`: the instant a paused clock was paused (a late resume or stop is taken from there);
  filled from each paused clock's last "pause" event.
- `sla_clocks.reported_period` and `sla_month_closes`: the month whose monthly report counted a clock's outcome,
  and the months already reported. Months reported before this revision are closed now, from their first
  report's time, with the clocks decided in them.
  PostgreSQL: row-level security on the new table with the policy of 0001 (the table is client-owned,
  client_id leads its primary key).
"""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

POLICY = "((SELECT app_tenant_all()) OR client_id = ANY ((SELECT app_tenant_ids())::bigint[]))"
MICROS = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# revision identifiers, used by Alembic.
revision = "0022"
down_revision = "0019"
branch_labels = None
depends_on = None


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _month(tz: str, period: str) -> tuple[datetime, datetime]:
    year, month = (int(x) for x in period.split("-"))
    nxt = date(year + month // 12, month % 12 + 1, 1)
    zone = ZoneInfo(tz)
    return (
        datetime(year, month, 1, tzinfo=zone).astimezone(UTC),
        datetime(nxt.year, nxt.month, 1, tzinfo=zone).astimezone(UTC),
    )


def _bind_time(value: datetime) -> datetime:
    return value if _pg() else value.astimezone(UTC).replace(tzinfo=None)


def upgrade():
    bind = op.get_bind()
    if _pg():
        bind.execute(sa.text("SELECT set_config('app.client_ids', '*', true)"))
    op.alter_column("sla_clocks", "allowance_s", new_column_name="allowance_us")
    op.alter_column("sla_clocks", "elapsed_s", new_column_name="elapsed_us")
    if _pg():
        op.execute("ALTER TABLE sla_clocks ALTER COLUMN allowance_us TYPE bigint, ALTER COLUMN elapsed_us TYPE bigint")
    op.execute("UPDATE sla_clocks SET allowance_us = allowance_us * 1000000, elapsed_us = elapsed_us * 1000000")
    op.add_column("sla_clocks", sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("sla_clocks", sa.Column("reported_period", sa.String(length=7), nullable=True))
    op.execute(
        "UPDATE sla_clocks SET paused_at = (SELECT max(e.at) FROM sla_clock_events e WHERE e.client_id = "
        "sla_clocks.client_id AND e.clock_id = sla_clocks.id AND e.event = 'pause') WHERE state = 'paused'"
    )
    op.create_table(
        "sla_month_closes",
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_sla_month_closes_client_id_clients"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("client_id", "period", name=op.f("pk_sla_month_closes")),
    )
    if _pg():
        op.execute("ALTER TABLE sla_month_closes ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE sla_month_closes FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON sla_month_closes USING {POLICY} WITH CHECK {POLICY}")
    reported = bind.execute(
        sa.text(
            "SELECT r.client_id, r.period, min(r.generated_at), c.timezone FROM monthly_reports r "
            "JOIN clients c ON c.id = r.client_id GROUP BY r.client_id, r.period, c.timezone "
            "ORDER BY r.client_id, r.period"
        )
    ).all()
    for client_id, period, first, tz in reported:
        starts, ends = _month(tz, period)
        if isinstance(first, str):  # SQLite hands back text for an aggregate
            first = datetime.fromisoformat(first)
        first = first if first.tzinfo else first.replace(tzinfo=UTC)
        bind.execute(
            sa.text(
                "INSERT INTO sla_month_closes (client_id, period, starts_at, ends_at, closed_at) "
                "VALUES (:c, :p, :s, :e, :at)"
            ),
            {"c": client_id, "p": period, "s": _bind_time(starts), "e": _bind_time(ends), "at": _bind_time(first)},
        )
        bind.execute(
            sa.text(
                "UPDATE sla_clocks SET reported_period = :p WHERE client_id = :c AND reported_period IS NULL "
                "AND coalesce(breached_at, stopped_at) >= :s AND coalesce(breached_at, stopped_at) < :e"
            ),
            {"c": client_id, "p": period, "s": _bind_time(starts), "e": _bind_time(ends)},
        )


def downgrade():
    if _pg():
        op.execute("DROP POLICY IF EXISTS tenant_isolation ON sla_month_closes")
    op.drop_table("sla_month_closes")
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.drop_column("reported_period")
        batch_op.drop_column("paused_at")
    op.execute("UPDATE sla_clocks SET allowance_us = allowance_us / 1000000, elapsed_us = elapsed_us / 1000000")
    if _pg():
        op.execute(
            "ALTER TABLE sla_clocks ALTER COLUMN allowance_us TYPE integer, ALTER COLUMN elapsed_us TYPE integer"
        )
    op.alter_column("sla_clocks", "allowance_us", new_column_name="allowance_s")
    op.alter_column("sla_clocks", "elapsed_us", new_column_name="elapsed_s")
