"""ISO 20022 CAMT.053 bank-to-customer statements (versions .001.02 to .001.13, any namespace prefix).

XML is parsed with defusedxml (no entities, no external references). Per statement (`Stmt`):

- **Amounts as booked.** An entry's (`Ntry`) booked amount is what was paid. It is split over its
  transaction details (`TxDtls`, a batch booking) only when every detail states its own amount in the entry's
  currency (`TxDtls/Amt`, or `AmtDtls/TxAmt/Amt` before version .03), all are credits, and they add up to
  the booked amount exactly; otherwise the entry is one payment of the booked amount, its details' texts
  joined as the remittance. A detail's amount that disagrees with its entry is never posted.
- **Only booked credits are payments.** CRDT entries are payments; DBIT entries, reversals (`RvslInd`) and
  entries not booked (`Sts` PDNG or INFO) are left out and counted.
- **The statement reconciles.** Per currency, the opening balance (OPBD, else PRCD) + booked credits -
  booked debits must equal the closing booked balance (CLBD); a statement with an opening balance and no
  closing balance in the same currency (or the other way round) is refused. The transaction summary
  (`TxsSummry`), where present, must agree with the entries: number and sum of credit and of debit entries,
  and the total number of entries.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from clients.bank_lines import (
    FORMAT_CAMT053,
    BankFileRejected,
    BankLine,
    ClosingBalance,
    DebitLine,
    Statement,
    check_balance,
    file_digest,
    first_of,
    line_ref,
    money_text,
    squeeze,
)

OPENING = ("OPBD", "PRCD")
CLOSING = ("CLBD",)
INTERIM = "ITBD"
NOT_BOOKED = ("PDNG", "INFO", "FUTR")


def _text(node: Any, path: str) -> str:
    found = node.find(path) if node is not None else None
    return (found.text or "").strip() if found is not None and found.text else ""


def _where(stmt: Any, number: int) -> str:
    stmt_id = _text(stmt, "{*}Id")
    account = _text(stmt, "{*}Acct/{*}Id/{*}IBAN") or _text(stmt, "{*}Acct/{*}Id/{*}Othr/{*}Id")
    name = f"statement {stmt_id}" if stmt_id else f"statement {number}"
    return f"{name} (account {account})" if account else name


def _amount(node: Any, where: str, what: str) -> tuple[Decimal, str]:
    """(amount, currency) of an Amt element; refuses a missing or unreadable one, naming the element."""
    if node is None:
        raise BankFileRejected(f"{where}: the {what} has no amount (Amt)")
    text = (node.text or "").strip()
    parsed = _decimal(text)
    amount = parsed if parsed is not None else Decimal("NaN")
    if not amount.is_finite() or amount < 0 or not text:
        raise BankFileRejected(f"{where}: the {what}'s amount (Amt) {text!r} is not an amount")
    currency = (node.get("Ccy") or "").strip().upper()
    if not currency:
        raise BankFileRejected(f"{where}: the {what}'s amount (Amt) has no currency (Ccy)")
    return amount, currency


def _signed(node: Any, where: str, what: str, balance: bool = False) -> tuple[Decimal, str]:
    """An amount signed by its CdtDbtInd. Some banks leave the indicator out of their balances (which the
    schema does not allow): such a balance is read as a credit, and a wrong guess cannot pass the
    reconciliation. An entry without one is refused: which way its money went is not known."""
    amount, currency = _amount(node.find("{*}Amt"), where, what)
    sign = _text(node, "{*}CdtDbtInd") or ("CRDT" if balance else "")
    if sign not in ("CRDT", "DBIT"):
        raise BankFileRejected(f"{where}: the {what}'s credit/debit indicator (CdtDbtInd) {sign!r} is not CRDT or DBIT")
    return (amount if sign == "CRDT" else -amount), currency


def read(content: bytes) -> Statement:
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    try:
        root = fromstring(content)
    except (ParseError, DefusedXmlException) as exc:
        raise BankFileRejected(f"the CAMT.053 file is not well-formed XML ({_xml_problem(exc)})") from None
    statements = root.findall(".//{*}BkToCstmrStmt/{*}Stmt")
    if not statements:
        raise BankFileRejected("the CAMT.053 file has no statement (BkToCstmrStmt/Stmt)")
    out = Statement(FORMAT_CAMT053)
    n = 0
    seen: dict[str, int] = {}
    unbalanced: list[str] = []
    for number, stmt in enumerate(statements, start=1):
        where = _where(stmt, number)
        entries = stmt.findall("{*}Ntry")
        try:
            _reconcile(stmt, entries, where)
        except BankFileRejected as exc:
            unbalanced.append(str(exc))
            continue
        identity = "|".join(
            (
                _text(stmt, "{*}Id"),
                _text(stmt, "{*}Acct/{*}Id/{*}IBAN") or _text(stmt, "{*}Acct/{*}Id/{*}Othr/{*}Id"),
                _text(stmt, "{*}ElctrncSeqNb"),
                _text(stmt, "{*}LglSeqNb"),
            )
        )
        if not _text(stmt, "{*}Id"):
            identity += "|" + file_digest(content)
        seen[identity] = seen.get(identity, 0) + 1
        identity += f"|{seen[identity]}" * (seen[identity] > 1)  # the same statement id twice in one file
        for position, entry in enumerate(entries, start=1):
            lines = _entry_lines(entry, f"{where}, entry {position}", identity, position, _statement_day(stmt))
            if lines is None:
                n += 1
                out.debits += 1
                debit = _debit_line(entry, f"{where}, entry {position}", identity, position, _statement_day(stmt))
                if debit is not None:
                    debit.line, debit.account = n, _account(stmt)
                    out.debit_lines.append(debit)
                continue
            for line in lines:  # the parts of a batch booking are lines of their own
                n += 1
                line.line = n
            out.lines.extend(lines)
        out.closing += _closing(stmt, where)
    if unbalanced:
        raise BankFileRejected(first_of(unbalanced))
    return out


def _account(stmt: Any) -> str:
    return _text(stmt, "{*}Acct/{*}Id/{*}IBAN") or _text(stmt, "{*}Acct/{*}Id/{*}Othr/{*}Id")


def _closing(stmt: Any, where: str) -> list[ClosingBalance]:
    """The statement's closing booked balances (CLBD) with their dates."""
    out = []
    for bal in stmt.findall("{*}Bal"):
        code = (_text(bal, "{*}Tp/{*}CdOrPrtry/{*}Cd") or _text(bal, "{*}Tp/{*}CdOrPrtry/{*}Prtry")).upper()
        if code not in CLOSING:
            continue
        amount, currency = _signed(bal, where, f"{code} balance", balance=True)
        day = _date(_text(bal, "{*}Dt/{*}Dt") or _text(bal, "{*}Dt/{*}DtTm")[:10] or _statement_day(stmt))
        if day is not None:
            out.append(ClosingBalance(_account(stmt), currency, day, amount))
    return out


def _debit_line(entry: Any, where: str, identity: str, position: int, statement_day: str) -> DebitLine | None:
    """A booked debit that is not a reversal, with every reference the bank gave back."""
    signed, currency = _signed(entry, where, "entry")
    if signed >= 0 or _text(entry, "{*}RvslInd").lower() in ("true", "1") or not _booked(entry):
        return None
    booked = _text(entry, "{*}BookgDt/{*}Dt") or _text(entry, "{*}BookgDt/{*}DtTm")[:10] or statement_day
    value = _text(entry, "{*}ValDt/{*}Dt") or _text(entry, "{*}ValDt/{*}DtTm")[:10] or booked
    refs = [_text(entry, "{*}AcctSvcrRef"), _text(entry, "{*}NtryRef"), _text(entry, "{*}AddtlNtryInf")]
    for tx in entry.findall("{*}NtryDtls/{*}TxDtls"):
        for tag in ("EndToEndId", "MsgId", "PmtInfId", "InstrId", "AcctSvcrRef"):
            refs.append(_text(tx, "{*}Refs/{*}" + tag))
        refs += [u.text or "" for u in tx.iterfind("{*}RmtInf/{*}Ustrd")]
    for batch in entry.findall("{*}NtryDtls/{*}Btch"):
        refs += [_text(batch, "{*}MsgId"), _text(batch, "{*}PmtInfId")]
    ref = line_ref("CAMT", identity, str(position), refs[0] or refs[1], booked, signed)
    text = squeeze(" ".join(r for r in refs if r and r != "NOTPROVIDED"))
    return DebitLine(0, ref, _date(booked), _date(value), -signed, currency, "", text)


def _xml_problem(exc: Exception) -> str:
    text = str(exc)
    return "entities or external references are not allowed" if "entit" in text.lower() else text


def _status(entry: Any) -> str:
    return (_text(entry, "{*}Sts/{*}Cd") or _text(entry, "{*}Sts")).upper()


def _booked(entry: Any) -> bool:
    return _status(entry) not in NOT_BOOKED


def _balances(stmt: Any, where: str) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """Opening and closing booked balance per currency: OPBD (else PRCD) and CLBD; a page of a statement that
    goes on in the next one has an interim booked balance (ITBD) in place of either."""
    found: dict[tuple[str, str], list[Decimal]] = {}
    for bal in stmt.findall("{*}Bal"):
        code = (_text(bal, "{*}Tp/{*}CdOrPrtry/{*}Cd") or _text(bal, "{*}Tp/{*}CdOrPrtry/{*}Prtry")).upper()
        if code in (*OPENING, *CLOSING, INTERIM):
            amount, currency = _signed(bal, where, f"{code} balance", balance=True)
            found.setdefault((code, currency), []).append(amount)
    opening: dict[str, Decimal] = {}
    closing: dict[str, Decimal] = {}
    for currency in sorted({c for _, c in found}):
        interim = found.get((INTERIM, currency), [])
        first = found.get(("OPBD", currency)) or found.get(("PRCD", currency))
        last = found.get(("CLBD", currency))
        if first:
            opening[currency] = first[0]
        elif interim and (last or len(interim) > 1):
            opening[currency] = interim[0]
        if last:
            closing[currency] = last[-1]
        elif interim and (first or len(interim) > 1):
            closing[currency] = interim[-1]
    return opening, closing


def _reconcile(stmt: Any, entries: list[Any], where: str) -> None:
    """Opening + booked credits - booked debits = closing, per currency; the summary agrees with the entries."""
    opening, closing = _balances(stmt, where)
    moves: dict[str, list[Decimal]] = {}
    for position, entry in enumerate(entries, start=1):
        amount, currency = _signed(entry, f"{where}, entry {position}", "entry")
        if _booked(entry):
            moves.setdefault(currency, []).append(amount)
    for currency in sorted(set(opening) | set(closing)):
        if (currency not in opening or currency not in closing) and currency in moves:
            have, lacks = ("an opening", "closing") if currency in opening else ("a closing", "opening")
            raise BankFileRejected(
                f"{where}: it has {have} balance in {currency} but no {lacks} balance in {currency}, "
                "so its entries cannot be checked against its balances"
            )
        if currency not in opening or currency not in closing:
            continue  # one balance and no entries in that currency: nothing to post, nothing to check
        amounts = moves.get(currency, [])
        credits = sum((a for a in amounts if a > 0), Decimal(0))
        debits = -sum((a for a in amounts if a < 0), Decimal(0))
        check_balance(f"{where}, {currency}", currency, opening[currency], credits, debits, closing[currency])
    if opening or closing:
        strays = sorted(set(moves) - set(opening) - set(closing))
        if strays:
            raise BankFileRejected(
                f"{where}: it has entries in {', '.join(strays)} but no balances in that currency to check them against"
            )
    _check_summary(stmt, entries, where)


def _check_summary(stmt: Any, entries: list[Any], where: str) -> None:
    summary = stmt.find("{*}TxsSummry")
    if summary is None:
        return
    signed = [_signed(e, where, "entry") for e in entries]
    currencies = {c for _, c in signed}
    credits = [a for a, _ in signed if a > 0]
    debits = [-a for a, _ in signed if a < 0]
    total_count = _text(summary, "{*}TtlNtries/{*}NbOfNtries")
    if total_count and _int(total_count) != len(entries):
        raise BankFileRejected(
            f"{where}: its transaction summary (TxsSummry/TtlNtries) counts {total_count} entries, "
            f"but the statement has {len(entries)}"
        )
    net_text = _text(summary, "{*}TtlNtries/{*}TtlNetNtry/{*}Amt") or _text(summary, "{*}TtlNtries/{*}TtlNetNtryAmt")
    net_sign = _text(summary, "{*}TtlNtries/{*}TtlNetNtry/{*}CdtDbtInd") or _text(summary, "{*}TtlNtries/{*}CdtDbtInd")
    net = _decimal(net_text)
    if net is not None and net_sign in ("CRDT", "DBIT") and len(currencies) == 1:
        currency = next(iter(currencies))
        net = net if net_sign == "CRDT" else -net
        found_net = sum(credits, Decimal(0)) - sum(debits, Decimal(0))
        if net != found_net:
            raise BankFileRejected(
                f"{where}: its transaction summary (TtlNtries) gives the entries a net of {money_text(net, currency)}, "
                f"but they come to {money_text(found_net, currency)}"
            )
    for label, path, found in (("credit", "TtlCdtNtries", credits), ("debit", "TtlDbtNtries", debits)):
        count, total = _text(summary, f"{{*}}{path}/{{*}}NbOfNtries"), _text(summary, f"{{*}}{path}/{{*}}Sum")
        if count and _int(count) != len(found):
            raise BankFileRejected(
                f"{where}: its transaction summary ({path}) counts {count} {label} entries, "
                f"but the statement has {len(found)}"
            )
        if total and len(currencies) == 1:
            currency = next(iter(currencies))
            stated = _decimal(total)
            if stated is None:
                raise BankFileRejected(f"{where}: its transaction summary ({path}/Sum) {total!r} is not an amount")
            if stated != sum(found, Decimal(0)):
                raise BankFileRejected(
                    f"{where}: its transaction summary ({path}/Sum) says the {label} entries come to "
                    f"{money_text(stated, currency)}, but they add up to {money_text(sum(found, Decimal(0)), currency)}"
                )


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


_AMT = re.compile(r"\d{1,18}(\.\d{0,5})?", re.ASCII)  # ISO 20022 amounts: 18 digits, 5 decimals, no exponent


def _decimal(text: str) -> Decimal | None:
    """A CAMT amount as written by the schema (digits, one decimal point); exponents, signs, NaN are not amounts."""
    if not text or not _AMT.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _detail_amount(tx: Any) -> Any:
    node = tx.find("{*}Amt")
    if node is None:  # (an Element without children is falsy: compare with None)
        node = tx.find("{*}AmtDtls/{*}TxAmt/{*}Amt")
    return node


def _split(entry: Any, details: list[Any], amount: Decimal, currency: str) -> bool:
    """Whether the entry is a batch of payments: every detail a credit in the entry's currency with its own
    amount, together exactly the booked amount."""
    if len(details) < 2:
        return False
    total = Decimal(0)
    for tx in details:
        node = _detail_amount(tx)
        if node is None or (node.get("Ccy") or "").strip().upper() != currency:
            return False
        if _text(tx, "{*}CdtDbtInd") not in ("", "CRDT"):
            return False
        part = _decimal((node.text or "").strip())
        if part is None or not part.is_finite() or part <= 0:
            return False
        total += part
    return total == amount


def _statement_day(stmt: Any) -> str:
    """The day a statement reports (for entries that give no booking or value date): the date of its closing
    balance, else the end of its period, else the day it was written."""
    for bal in stmt.findall("{*}Bal"):
        if _text(bal, "{*}Tp/{*}CdOrPrtry/{*}Cd") in CLOSING:
            found = _text(bal, "{*}Dt/{*}Dt") or _text(bal, "{*}Dt/{*}DtTm")[:10]
            if found:
                return found
    return _text(stmt, "{*}FrToDt/{*}ToDtTm")[:10] or _text(stmt, "{*}CreDtTm")[:10]


def _entry_lines(entry: Any, where: str, identity: str, position: int, statement_day: str) -> list[BankLine] | None:
    """The payments of one entry (None for a debit, a reversal or an entry not booked)."""
    signed, currency = _signed(entry, where, "entry")
    if signed <= 0 or _text(entry, "{*}RvslInd").lower() in ("true", "1") or not _booked(entry):
        return None
    booked = _text(entry, "{*}BookgDt/{*}Dt") or _text(entry, "{*}BookgDt/{*}DtTm")[:10]
    booked = booked or _text(entry, "{*}ValDt/{*}Dt") or _text(entry, "{*}ValDt/{*}DtTm")[:10] or statement_day
    day = _date(booked)
    details = entry.findall("{*}NtryDtls/{*}TxDtls")
    entry_ref = _text(entry, "{*}AcctSvcrRef") or _text(entry, "{*}NtryRef")
    if _split(entry, details, signed, currency):
        out = []
        for k, tx in enumerate(details, start=1):
            amount = _decimal((_detail_amount(tx).text or "").strip()) or Decimal(0)
            own = _text(tx, "{*}Refs/{*}AcctSvcrRef")
            readable = own if own and own != entry_ref else f"{entry_ref}/{k}" if entry_ref else ""
            ref = line_ref("CAMT", identity, f"{position}.{k}", readable, booked, amount)
            payer, remittance = _party(tx), _remittance([tx], entry)
            out.append(BankLine(0, ref, day, amount, currency, payer, remittance))
        return out
    readable = entry_ref or (_end_to_end(details[0]) if len(details) == 1 else "")
    ref = line_ref("CAMT", identity, str(position), readable, booked, signed)
    payers = {p for p in (_party(tx) for tx in details) if p}
    payer = payers.pop() if len(payers) == 1 else ""
    return [BankLine(0, ref, day, signed, currency, payer, _remittance(details, entry))]


def _date(text: str) -> Any:
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        return None  # reported by the import as a missing date


def _end_to_end(tx: Any) -> str:
    return _text(tx, "{*}Refs/{*}EndToEndId").replace("NOTPROVIDED", "")


def _party(tx: Any) -> str:
    return squeeze(_text(tx, "{*}RltdPties/{*}Dbtr/{*}Nm") or _text(tx, "{*}RltdPties/{*}Dbtr/{*}Pty/{*}Nm"))


def _remittance(details: list[Any], entry: Any) -> str:
    texts: list[str] = []
    for tx in details:
        texts += [u.text or "" for u in tx.iterfind("{*}RmtInf/{*}Ustrd")]
        texts += [_text(d, "{*}CdtrRefInf/{*}Ref") for d in tx.iterfind("{*}RmtInf/{*}Strd")]
        texts += [_text(d, "{*}Nb") for d in tx.iterfind("{*}RmtInf/{*}Strd/{*}RfrdDocInf")]
        texts.append(_end_to_end(tx))
    texts.append(_text(entry, "{*}AddtlNtryInf"))
    return squeeze(" ".join(t for t in texts if t.strip()))
