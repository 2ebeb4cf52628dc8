"""The planner's statistics after bulk writes: `app_analyze` accepts exactly the listed tables, and `GrowthWatch`
refreshes a table once it has grown past autovacuum's threshold inside the job's own transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from provider.core.statistics import ANALYZABLE, GrowthWatch
from provider.extensions import db
from tests.factories import make_client, make_debtor


@contextmanager
def analyses() -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "app_analyze" in statement:
            seen.append(str(parameters))

    engine = db.session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def test_app_analyze_accepts_the_listed_tables_and_nothing_else(db_session: Any) -> None:
    if not _postgresql():
        pytest.skip("ANALYZE through app_analyze is PostgreSQL's")
    for table in ANALYZABLE:
        db.session.execute(sa.text("SELECT app_analyze(:t)"), {"t": table})
    db.session.execute(sa.text("SAVEPOINT refused"))
    with pytest.raises(sa.exc.DBAPIError, match="not a table the application may analyze"):
        db.session.execute(sa.text("SELECT app_analyze('clients')"))
    db.session.execute(sa.text("ROLLBACK TO SAVEPOINT refused"))


def test_growth_watch_refreshes_a_table_once_it_has_grown_past_the_threshold(db_session: Any) -> None:
    acme = make_client()
    watch = GrowthWatch(db.session, "debtors")
    for _ in range(70):
        make_debtor(acme)
    db.session.flush()
    with analyses() as seen:
        watch.wrote("debtors", 20)  # below 50 + 10 %: nothing
        assert seen == []
        watch.wrote("debtors", 50)  # 70 rows: past the threshold of a small table
    if not _postgresql():
        assert seen == []  # SQLite: nothing to do
        return
    assert len(seen) == 1 and "debtors" in seen[0]
    size = db.session.scalar(sa.text("SELECT reltuples FROM pg_class WHERE relname = 'debtors'"))
    assert size is not None and size >= 70  # the transaction's own new rows are counted
    assert watch.added["debtors"] == 0
    with analyses() as again:
        watch.wrote("debtors", 5)  # the threshold now follows the table's new size
    assert again == []


def test_growth_watch_only_watches_tables_the_function_accepts(db_session: Any) -> None:
    with pytest.raises(ValueError, match="not in ANALYZABLE"):
        GrowthWatch(db.session, "clients")
