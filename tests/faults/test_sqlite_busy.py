"""The embedded default (SQLite, jobs in the web process, the demo's `flask run`): a payment file imports
for a debtor with a promise to pay while people sign in and save; none of them fails or waits for good."""

from __future__ import annotations

import threading
import time

import pytest

from tests.faults import services as svc
from tests.faults import work
from tests.faults.conftest import SqliteWorld

pytestmark = pytest.mark.faults

LEDGER_ROWS = 20_000
PAYMENT_LINES = 2_000
DEBTORS = 400


def _payment_lines() -> bytes:
    lines = [work.PAYMENT_HEADER, "BUSY-000000,D-1,2026-03-10,100.00,EUR,,,keeping the promise\n"]
    for n in range(1, PAYMENT_LINES):
        lines.append(f"BUSY-{n:06d},LED-D{n % DEBTORS:04d},2026-03-10,{n % 50 + 1}.00,EUR,,,\n")
    return "".join(lines).encode()


class People(threading.Thread):
    """Someone doing one thing over and over until told to stop; every answer is kept."""

    def __init__(self, name: str, act: object) -> None:
        super().__init__(name=name, daemon=True)
        self.act = act
        self.answers: list[tuple[str, int, float, str]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                code, text = self.act()  # type: ignore[operator]
            except Exception as exc:  # a timeout is a failure a person would notice too
                code, text = 0, repr(exc)
            self.answers.append((self.name, code, time.monotonic() - started, text[:300]))
            time.sleep(0.2)


def test_a_payment_import_on_sqlite_fails_no_sign_in_and_no_save(sqlite_world: SqliteWorld) -> None:
    world = sqlite_world
    web = world.web()
    browser = world.session(web)
    client_id, debtor_id = world.seed["client_id"], world.seed["debtor_id"]
    ledger = work.placement_file("LED", LEDGER_ROWS, debtors=DEBTORS)
    assert work.upload_placements(browser, client_id, "ledger.csv", ledger).status_code == 302
    work.wait_until(
        "the ledger's placements posted",
        lambda: work.batch_status(world, client_id, "ledger.csv") not in work.UNFINISHED,
        timeout=120,
    )
    assert work.batch_status(world, client_id, "ledger.csv") == "posted"

    def sign_in() -> tuple[int, str]:
        person = svc.WebSession(svc.base_url(web), timeout=30)
        try:
            answer = person.login(world.seed["manager"], world.seed["password"])
            return answer.status_code, answer.text
        finally:
            person.close()

    editor = world.session(web)
    edit = f"/clients/{client_id}/debtors/{debtor_id}/edit"
    saves = iter(range(1_000_000))

    def save() -> tuple[int, str]:
        answer = editor.post_form(edit, {"name": f"Dan Two ({next(saves)})", "segment": "standard"})
        return answer.status_code, answer.text

    people = [People("sign-in", sign_in), People("save", save)]
    for person in people:
        person.start()
    try:
        uploaded = work.upload_payments(browser, client_id, "busy-payments.csv", _payment_lines())
        assert uploaded.status_code == 302, f"payment upload answered {uploaded.status_code}"
        work.wait_until(
            "the payment file imported",
            lambda: work.batch_status(world, client_id, "busy-payments.csv") not in work.UNFINISHED,
            timeout=90,
        )
    finally:
        for person in people:
            person.stop.set()
        for person in people:
            person.join(timeout=60)
    answers = [a for person in people for a in person.answers]
    expected = {"sign-in": 302, "save": 302}
    failed = [a for a in answers if a[1] != expected[a[0]] or "database is locked" in a[3]]
    assert failed == [], f"{len(failed)} of {len(answers)} answers failed, e.g. {failed[:3]}"
    assert all(person.answers for person in people), "nobody got an answer while the file imported"
    slowest = max(a[2] for a in answers)
    assert slowest < 10, f"a person waited {slowest:.1f} s for an answer"
    assert work.batch_status(world, client_id, "busy-payments.csv") == "posted"
    assert work.payments(world, client_id, "BUSY") == (PAYMENT_LINES, PAYMENT_LINES)
