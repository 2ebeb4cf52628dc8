"""Set-based posting of a placement file: rows go to a temporary staging table, then SQL does the rest.

Checked rows are streamed into a per-import TEMP table (PostgreSQL `COPY`, SQLite `executemany`), and the
ledger rows are written with a handful of `INSERT ... SELECT` statements per chunk of lines instead of a
round trip per invoice. What the row-by-row `place_invoices` guarantees holds here too:

- an invoice number twice in the file is a problem on its second row (the first is kept);
- a number placed before with the same details is skipped, with other details it is a problem;
- debtors are matched by external reference and created (with the file's name for them) when new;
- every invoice gets its own balanced journal transaction: receivable +amount, sales -amount;
- the cached open balance starts at the amount, so it equals the sum of the invoice's entries.

Ids come from the tables' sequences on PostgreSQL (column defaults of the staging table, filled during
the COPY); on SQLite they are the current maximum plus the file line, read after the transaction holds
the write lock, so no other writer can take them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from clients import month_totals
from clients.journal import Account, Invoice, JournalEntry, JournalTransaction, TxKind
from clients.ledger import RowError
from clients.models import Client, Debtor, language_for_country
from provider.core import audit
from provider.core.clock import now_utc
from provider.core.db import UTCDateTime
from provider.core.statistics import refresh_statistics, refresh_statistics_if_stale

POST_CHUNK = 100_000  # lines per INSERT ... SELECT round (progress moves between rounds)
STATISTICS_AFTER = 500  # rows: a bulk load this big refreshes the planner's statistics of the tables it grew


@dataclass(frozen=True, slots=True)
class StageRow:
    line: int
    number: str
    debtor_ref: str
    debtor_name: str
    issue_date: date
    due_date: date
    currency: str
    amount_minor: int
    po_reference: str


COLUMNS = tuple(StageRow.__dataclass_fields__)
ENTRY_COLUMNS = ["client_id", "transaction_id", "account", "debtor_id", "invoice_id", "currency", "amount_minor"]


class Stage:
    """The TEMP table of one import, on the session's own connection (inside its transaction)."""

    def __init__(self, session: Session, client_id: int, batch_id: int) -> None:
        self.session = session
        self.client_id = client_id
        self.pg = session.get_bind().dialect.name == "postgresql"
        self.name = f"import_stage_{batch_id}"
        metadata = sa.MetaData()
        self.table = sa.Table(
            self.name,
            metadata,
            sa.Column("line", sa.Integer),
            sa.Column("number", sa.String(64)),
            sa.Column("debtor_ref", sa.String(64)),
            sa.Column("debtor_name", sa.String(200)),
            sa.Column("issue_date", sa.Date),
            sa.Column("due_date", sa.Date),
            sa.Column("currency", sa.String(3)),
            sa.Column("amount_minor", sa.BigInteger),
            sa.Column("po_reference", sa.String(64)),
            sa.Column("invoice_id", sa.BigInteger),
            sa.Column("tx_id", sa.BigInteger),
            prefixes=["TEMPORARY"],
        )
        self._create()

    def _create(self) -> None:
        ddl = (
            f"CREATE TEMPORARY TABLE {self.name} (line integer NOT NULL, number varchar(64) NOT NULL, "
            "debtor_ref varchar(64) NOT NULL, debtor_name varchar(200) NOT NULL, issue_date date NOT NULL, "
            "due_date date NOT NULL, currency varchar(3) NOT NULL, amount_minor bigint NOT NULL, "
            "po_reference varchar(64) NOT NULL, "
        )
        if self.pg:
            ddl += (
                "invoice_id bigint DEFAULT nextval(pg_get_serial_sequence('invoices', 'id')), "
                "tx_id bigint DEFAULT nextval(pg_get_serial_sequence('journal_transactions', 'id'))) ON COMMIT DROP"
            )
        else:
            ddl += "invoice_id bigint, tx_id bigint)"
        self.session.execute(sa.text(ddl))

    def drop(self) -> None:
        self.session.execute(sa.text(f"DROP TABLE IF EXISTS {self.name}"))

    # --- loading ------------------------------------------------------------------------------------

    def write(self, rows: Sequence[StageRow]) -> None:
        if not rows:
            return
        raw = self.session.connection().connection.dbapi_connection
        if raw is None:  # pragma: no cover - a checked-out connection always has one
            raise RuntimeError("no database connection")
        if self.pg:
            columns = ", ".join(COLUMNS)
            with raw.cursor() as cur, cur.copy(f"COPY {self.name} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(
                        (
                            row.line,
                            row.number,
                            row.debtor_ref,
                            row.debtor_name,
                            row.issue_date,
                            row.due_date,
                            row.currency,
                            row.amount_minor,
                            row.po_reference,
                        )
                    )
        else:
            marks = ", ".join("?" for _ in COLUMNS)
            cur = raw.cursor()
            cur.executemany(
                f"INSERT INTO {self.name} ({', '.join(COLUMNS)}) VALUES ({marks})",  # noqa: S608 - our own names
                [
                    (
                        r.line,
                        r.number,
                        r.debtor_ref,
                        r.debtor_name,
                        r.issue_date.isoformat(),
                        r.due_date.isoformat(),
                        r.currency,
                        r.amount_minor,
                        r.po_reference,
                    )
                    for r in rows
                ],
            )
            cur.close()

    def prepare(self) -> None:
        """Index the staging rows by line and number once they are all in."""
        self.session.execute(sa.text(f"CREATE INDEX {self.name}_line ON {self.name} (line)"))
        self.session.execute(sa.text(f"CREATE INDEX {self.name}_number ON {self.name} (number)"))
        self.session.execute(sa.text(f"ANALYZE {self.name}"))

    # --- checks against the file itself and the ledger ----------------------------------------------

    def duplicate_numbers(self, limit: int) -> tuple[list[RowError], int]:
        """Second and later rows of a number that appears more than once; they are dropped from the stage."""
        s = self.table.c
        first = sa.func.min(s.line).over(partition_by=s.number)
        ranked = sa.select(s.line, s.number, first.label("first")).subquery()
        dupes = sa.select(ranked.c.line, ranked.c.number, ranked.c.first).where(ranked.c.line != ranked.c.first)
        found = self.session.execute(dupes.order_by(ranked.c.line).limit(limit)).all()
        problems = [
            RowError(
                ln,
                "invoice_number",
                f"invoice {num} appears twice in this file (row {f}); if the file has a row per invoice line, "
                "say how its rows add up under “Rows per invoice”",
            )
            for ln, num, f in found
        ]
        count = len(problems)
        if found:
            count = self.session.scalar(sa.select(sa.func.count()).select_from(dupes.subquery())) or 0
            self.session.execute(sa.delete(self.table).where(s.line.in_(sa.select(dupes.subquery().c.line))))
        return problems, count

    def already_placed(self, limit: int) -> tuple[list[RowError], int, int]:
        """Numbers placed before: identical ones are skipped, different ones are problems. Both leave the stage."""
        s = self.table.c
        inv, deb = Invoice.__table__.c, Debtor.__table__.c
        same = sa.and_(
            deb.external_ref == s.debtor_ref,
            inv.issue_date == s.issue_date,
            inv.due_date == s.due_date,
            inv.currency == s.currency,
            inv.amount_minor == s.amount_minor,
            inv.po_reference == s.po_reference,
        )
        joined = self.table.join(
            Invoice.__table__, sa.and_(inv.client_id == self.client_id, inv.number == s.number)
        ).join(Debtor.__table__, sa.and_(deb.client_id == inv.client_id, deb.id == inv.debtor_id))
        counts = self.session.execute(
            sa.select(
                sa.func.count().filter(same),
                sa.func.count().filter(sa.not_(same)),
            ).select_from(joined)
        ).one()
        skipped, conflicting = int(counts[0] or 0), int(counts[1] or 0)
        problems = [
            RowError(ln, "invoice_number", f"invoice {num} was placed before with different details")
            for ln, num in self.session.execute(
                sa.select(s.line, s.number).select_from(joined).where(sa.not_(same)).order_by(s.line).limit(limit)
            ).all()
        ]
        if skipped or conflicting:
            placed = sa.select(inv.number).where(inv.client_id == self.client_id)
            self.session.execute(sa.delete(self.table).where(s.number.in_(placed)))
        return problems, skipped, conflicting

    def drop_lines(self, lines: set[int]) -> None:
        if lines:
            self.session.execute(sa.delete(self.table).where(self.table.c.line.in_(sorted(lines))))

    def count(self) -> int:
        return self.session.scalar(sa.select(sa.func.count()).select_from(self.table)) or 0

    def invoice_ids(self) -> dict[str, int]:
        """After `post`: the invoice id of every staged row, by number, in line order (PostgreSQL: the ids
        the staging table drew from the sequence; SQLite: looked up by number)."""
        s = self.table.c
        if self.pg:
            return dict(self.session.execute(sa.select(s.number, s.invoice_id).order_by(s.line)).all())
        inv = Invoice.__table__.c
        joined = self.table.join(Invoice.__table__, sa.and_(inv.client_id == self.client_id, inv.number == s.number))
        return dict(self.session.execute(sa.select(s.number, inv.id).select_from(joined).order_by(s.line)).all())

    # --- posting ------------------------------------------------------------------------------------

    def create_debtors(self) -> int:
        """Debtors of the file that the client does not have yet, named as on their first row."""
        s, deb = self.table.c, Debtor.__table__.c
        first_rows = sa.select(sa.func.min(s.line)).group_by(s.debtor_ref)
        known = sa.select(deb.external_ref).where(deb.client_id == self.client_id)
        now = sa.literal(now_utc(), UTCDateTime())
        name = sa.case((s.debtor_name == "", s.debtor_ref), else_=s.debtor_name)
        country = self.session.scalar(
            sa.select(Client.__table__.c.country).where(Client.__table__.c.id == self.client_id)
        )
        language = sa.literal(language_for_country(country or ""))
        source = sa.select(
            sa.literal(self.client_id), s.debtor_ref, name, sa.literal("standard"), language, sa.false(), now, now
        ).where(s.line.in_(first_rows), s.debtor_ref.not_in(known))
        before = self.session.scalar(sa.select(sa.func.count()).where(deb.client_id == self.client_id)) or 0
        self.session.execute(
            sa.insert(Debtor.__table__).from_select(
                [
                    "client_id",
                    "external_ref",
                    "name",
                    "segment",
                    "language",
                    "do_not_contact",
                    "created_at",
                    "updated_at",
                ],
                source,
            )
        )
        after = self.session.scalar(sa.select(sa.func.count()).where(deb.client_id == self.client_id)) or 0
        return after - before

    def _id_bases(self) -> tuple[int, int]:
        """SQLite only: ids are max(id) + line; the transaction already holds the write lock here."""
        inv = self.session.scalar(sa.select(sa.func.coalesce(sa.func.max(Invoice.__table__.c.id), 0)))
        tx = self.session.scalar(sa.select(sa.func.coalesce(sa.func.max(JournalTransaction.__table__.c.id), 0)))
        return int(inv or 0), int(tx or 0)

    def post(self, memo: str, *, statistics: bool = True) -> Iterator[int]:
        """Insert invoices, their transactions and entries, a chunk of lines at a time; yields rows posted.
        With `statistics` (a file), a big first chunk refreshes the planner's statistics at once; small
        repeated loads (the API's batches) leave that to `refresh_statistics_if_stale` instead."""
        s = self.table.c
        inv_t, tx_t, entry_t, deb = (
            Invoice.__table__,
            JournalTransaction.__table__,
            JournalEntry.__table__,
            Debtor.__table__.c,
        )
        if self.pg:
            invoice_id, tx_id = s.invoice_id, s.tx_id
        else:
            inv_base, tx_base = self._id_bases()
            invoice_id, tx_id = s.line + inv_base, s.line + tx_base
        actor = audit.current_actor()
        now = sa.literal(now_utc(), UTCDateTime())
        client = sa.literal(self.client_id, sa.BigInteger)
        with_debtor = self.table.join(
            Debtor.__table__, sa.and_(deb.client_id == self.client_id, deb.external_ref == s.debtor_ref)
        )
        lines = self.session.execute(sa.select(sa.func.min(s.line), sa.func.max(s.line))).one()
        if lines[0] is None:
            return
        first = int(lines[0])
        for low in range(first, int(lines[1]) + 1, POST_CHUNK):
            in_chunk = sa.and_(s.line >= low, s.line < low + POST_CHUNK)
            self.session.execute(
                sa.insert(inv_t).from_select(
                    [
                        "id",
                        "client_id",
                        "debtor_id",
                        "number",
                        "issue_date",
                        "due_date",
                        "currency",
                        "amount_minor",
                        "adjusted_minor",
                        "open_minor",
                        "po_reference",
                        "on_hold",
                        "placed_at",
                        "updated_at",
                    ],
                    sa.select(
                        invoice_id,
                        client,
                        deb.id,
                        s.number,
                        s.issue_date,
                        s.due_date,
                        s.currency,
                        s.amount_minor,
                        sa.literal(0, sa.BigInteger),
                        s.amount_minor,
                        s.po_reference,
                        sa.false(),
                        now,
                        now,
                    )
                    .select_from(with_debtor)
                    .where(in_chunk),
                )
            )
            # every staged row has its debtor by now, so the chunk's rows are the invoices just placed
            # (Core INSERT ... SELECT reports no rowcount through psycopg, so count them)
            posted = self.session.scalar(sa.select(sa.func.count()).where(in_chunk)) or 0
            self.session.execute(
                sa.insert(tx_t).from_select(
                    ["id", "client_id", "kind", "occurred_on", "posted_at", "actor_user_id", "actor_label", "memo"],
                    sa.select(
                        tx_id,
                        client,
                        sa.literal(TxKind.INVOICE.value),
                        s.issue_date,
                        now,
                        sa.literal(actor.user_id, sa.BigInteger),
                        sa.literal(actor.label),
                        sa.literal(memo),
                    ).where(in_chunk),
                )
            )
            if statistics and low == first and posted >= STATISTICS_AFTER:
                refresh_statistics(self.session, "invoices", "journal_transactions")
            for account, sign in ((Account.RECEIVABLE, 1), (Account.SALES, -1)):
                self.session.execute(
                    sa.insert(entry_t).from_select(
                        [
                            "client_id",
                            "transaction_id",
                            "account",
                            "debtor_id",
                            "invoice_id",
                            "currency",
                            "amount_minor",
                        ],
                        sa.select(
                            client,
                            tx_id,
                            sa.literal(account.value),
                            deb.id,
                            invoice_id,
                            s.currency,
                            s.amount_minor * sign,
                        )
                        .select_from(with_debtor)
                        .where(in_chunk),
                    )
                )
            if not month_totals.kept_by_trigger(self.session):
                month_totals.add_posted(
                    self.session, self.client_id, entry_t.c.transaction_id.in_(sa.select(tx_id).where(in_chunk))
                )
            yield posted


@dataclass(frozen=True, slots=True)
class RowsPlaced:
    """What `place_rows` did: invoice ids of the rows placed now (by invoice number, in request order),
    how many rows were placed before with the same details, and every problem (nothing placed when any)."""

    ids: dict[str, int]
    unchanged: int
    problems: list[RowError]


def place_rows(session: Session, client_id: int, rows: Sequence[dict[str, Any]], memo: str = "") -> RowsPlaced:
    """Place schema-checked invoice rows that name their debtor by id (the API's batch), set-based.

    The same guarantees as `clients.ledger.place_invoices`, with problems keyed by row (1-based) and the
    API's field names: a number twice in the batch is a problem on its later rows; a number placed before
    with the same details is skipped (counted as unchanged), with other details it is a problem; a debtor
    id that is not one of the client's debtors is a problem. All or nothing: every check runs before
    anything is written, and with any problem nothing is. The new rows go through the staging table of
    the file import and are posted by its INSERT ... SELECT.

    Every lookup is by key for the batch's own debtors and numbers, so the cost follows the batch, not the
    size of the ledger.
    """
    pg = session.get_bind().dialect.name == "postgresql"
    deb = Debtor.__table__.c
    wanted = sorted({int(r["debtor_id"]) for r in rows})
    refs: dict[int, str] = dict(
        session.execute(
            sa.select(deb.id, deb.external_ref).where(deb.client_id == client_id, _among(deb.id, wanted, pg))
        ).all()
    )
    problems: list[RowError] = []
    first: dict[str, int] = {}
    staged: list[tuple[StageRow, int]] = []
    for line, r in enumerate(rows, start=1):
        number = r["number"].strip()
        ref = refs.get(r["debtor_id"])
        if ref is None:
            problems.append(RowError(line, "debtor_id", f"debtor #{r['debtor_id']} is not a debtor of this client"))
        if number in first:
            problems.append(
                RowError(line, "number", f"invoice {number} appears twice in this batch (row {first[number]})")
            )
            continue
        first[number] = line
        row = StageRow(
            line,
            number,
            ref or "",
            "",
            r["issue_date"],
            r["due_date"],
            r["currency"].upper(),
            r["amount_minor"],
            r.get("po_reference") or "",
        )
        staged.append((row, r["debtor_id"]))
    placed_before = _placed_before(session, client_id, staged, problems, pg)
    if problems:
        return RowsPlaced({}, 0, sorted(problems, key=lambda e: (e.row, e.field)))
    fresh = [(row, debtor_id) for row, debtor_id in staged if row.line not in placed_before]
    if not fresh:
        return RowsPlaced({}, len(placed_before), [])
    audit.record(
        session,
        "invoice.place",
        "Invoice",
        client_id=client_id,
        object_id="*",
        after={"count": len(fresh), "via": memo or "api"},
    )
    session.flush()  # SQLite: the write lock is held before `post` chooses ids
    session.execute(sa.text("DROP TABLE IF EXISTS import_stage_api"))
    stage = Stage(session, client_id, "api")  # type: ignore[arg-type]
    stage.write([row for row, _ in fresh])
    for _ in stage.post(memo, statistics=False):
        pass
    ids = stage.invoice_ids()
    stage.drop()
    refresh_statistics_if_stale(session, "invoices", "journal_transactions", "journal_entries")
    return RowsPlaced(ids, len(placed_before), [])


def _among(column: Any, values: Sequence[Any], pg: bool) -> Any:
    """`column IN (values)`; on PostgreSQL one array parameter (`= ANY(:values)`), which plans as one
    index scan whatever the number of values."""
    if pg:
        return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def _placed_before(
    session: Session, client_id: int, staged: Sequence[tuple[StageRow, int]], problems: list[RowError], pg: bool
) -> set[int]:
    """Lines whose number the client has already: identical ones are returned (to be skipped), others are
    problems. One index lookup by (client, number) for the batch's numbers."""
    inv = Invoice.__table__.c
    wanted = {row.number: (row, debtor_id) for row, debtor_id in staged}
    found = session.execute(
        sa.select(
            inv.number, inv.debtor_id, inv.issue_date, inv.due_date, inv.currency, inv.amount_minor, inv.po_reference
        ).where(inv.client_id == client_id, _among(inv.number, list(wanted), pg))
    ).all()
    same: set[int] = set()
    for number, *details in found:
        row, debtor_id = wanted[number]
        mine = (debtor_id, row.issue_date, row.due_date, row.currency, row.amount_minor, row.po_reference)
        if tuple(details) == mine:
            same.add(row.line)
        else:
            problems.append(RowError(row.line, "number", f"invoice {number} was placed before with different details"))
    return same
