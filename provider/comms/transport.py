"""SMTP transport: one reused connection (smtplib), a message built from its stored rendering, and the answer of
the server read as sent, refused for now, or refused for good.

Configured by the environment through provider.config (SMTP_HOST, SMTP_PORT, SMTP_STARTTLS, SMTP_SSL,
SMTP_USERNAME, SMTP_PASSWORD, SMTP_TIMEOUT, MAIL_RETURN_DOMAIN, MAIL_VERP_SECRET, MAIL_DEFAULT_FROM[_NAME]).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.charset import QP, Charset
from email.encoders import encode_base64
from email.header import Header
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr
from typing import Any

from provider.comms import verp
from provider.core.clock import now_utc
from provider.core.errors import ServiceError

STAFF_PURPOSES = frozenset({"report_ready", "sla_alert"})  # to client users and staff: no unsubscribe link


class TemporaryFailure(ServiceError):
    """The server could not be reached or refused for now (4xx): try again later. The message is for people (the
    job pages show it as the run's reason)."""


class PermanentFailure(ServiceError):
    """The server refused this message for good (5xx). The message is for people."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None
    port: int
    starttls: bool = False
    use_ssl: bool = False
    username: str = ""
    password: str = ""
    timeout: int = 30
    return_domain: str = "mail.localhost"
    verp_secret: str = ""

    @classmethod
    def from_config(cls, config: Any) -> SmtpSettings:
        return cls(
            host=config.get("SMTP_HOST"),
            port=int(config.get("SMTP_PORT") or 25),
            starttls=bool(config.get("SMTP_STARTTLS")),
            use_ssl=bool(config.get("SMTP_SSL")),
            username=config.get("SMTP_USERNAME") or "",
            password=config.get("SMTP_PASSWORD") or "",
            timeout=int(config.get("SMTP_TIMEOUT") or 30),
            return_domain=config.get("MAIL_RETURN_DOMAIN") or "mail.localhost",
            verp_secret=config.get("MAIL_VERP_SECRET") or "",
        )


@dataclass
class Outgoing:
    """Everything needed to send one stored message, read before the network is touched (no ORM object, no open
    transaction while the server answers)."""

    id: int
    client_id: int
    debtor_id: int | None
    purpose: str
    to_address: str
    to_name: str
    from_address: str
    from_name: str
    reply_to: str
    subject: str
    text_body: str
    html_body: str | None
    rfc_message_id: str
    language: str
    unsubscribe_url: str | None = None
    attempts: int = 0  # including the one under way
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)

    def bounce_address(self, settings: SmtpSettings) -> str:
        return verp.encode(
            verp.BOUNCE, self.client_id, self.id, secret=settings.verp_secret, domain=settings.return_domain
        )

    def reply_address(self, settings: SmtpSettings) -> str:
        if self.reply_to:
            return self.reply_to
        return verp.encode(
            verp.REPLY, self.client_id, self.id, secret=settings.verp_secret, domain=settings.return_domain
        )


_WIRE = compat32.clone(linesep="\r\n")  # smtplib sends bytes as given: lines must end in CRLF
_QP = Charset("utf-8")
_QP.body_encoding = QP  # readable text parts (quoted-printable), not base64


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def build_mime(out: Outgoing, settings: SmtpSettings) -> MIMEBase:
    """The MIME message: text part (+ HTML alternative), attachments, and the headers that let a reply, a bounce or
    an unsubscribe find their way back. The Message-ID was fixed when the message was queued, so a copy sent
    twice (see provider.comms.sender) is recognisable as the same message.

    Built with the `email.mime` classes (the compat32 policy): they write headers as given (non-ASCII ones
    encoded with RFC 2047) instead of parsing every header into objects, several times faster per message."""
    text_part = MIMEText(out.text_body or "", "plain", _QP)
    body: MIMEBase = text_part
    if out.html_body:
        body = MIMEMultipart("alternative", _subparts=[text_part, MIMEText(out.html_body, "html", _QP)])
    mime: MIMEBase = body
    if out.attachments:
        mime = MIMEMultipart("mixed", _subparts=[body])
        for filename, mimetype, content in out.attachments:
            maintype, _, subtype = mimetype.partition("/")
            part = (
                MIMEApplication(content, subtype or "octet-stream")
                if maintype == "application"
                else MIMEBase(maintype or "application", subtype or "octet-stream")
            )
            if maintype != "application":
                part.set_payload(content)
                encode_base64(part)
            part.add_header("Content-Disposition", "attachment", filename=filename)
            mime.attach(part)
    mime["From"] = formataddr((out.from_name, out.from_address), charset="utf-8")
    mime["To"] = formataddr((out.to_name, out.to_address), charset="utf-8")
    mime["Subject"] = _header(out.subject)
    mime["Date"] = format_datetime(now_utc())
    mime["Message-ID"] = out.rfc_message_id
    mime["Reply-To"] = out.reply_address(settings)
    if out.language:
        mime["Content-Language"] = out.language
    if out.purpose != "manual":
        mime["Auto-Submitted"] = "auto-generated"  # RFC 3834: holiday auto-responders stay quiet
    if out.unsubscribe_url and out.purpose not in STAFF_PURPOSES:
        mime["List-Unsubscribe"] = f"<{out.unsubscribe_url}>"
        mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return mime


def _reply_text(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(words.split())}"[:300]


class Connection:
    """One SMTP session reused for many messages; opened on first use, re-opened after the server dropped it."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None

    def open(self) -> smtplib.SMTP:
        s = self.settings
        if not s.host:
            raise TemporaryFailure("No outgoing mail server is configured (SMTP_HOST); the mail waits in the queue.")
        try:
            if s.use_ssl:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            smtp.ehlo()
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password)
        except smtplib.SMTPAuthenticationError as exc:
            raise TemporaryFailure(
                f"The mail server refused the sign-in ({_reply_text(exc.smtp_code, exc.smtp_error)}); "
                "check SMTP_USERNAME and SMTP_PASSWORD."
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(
                f"The mail server {s.host}:{s.port} could not be reached ({exc.__class__.__name__}: {exc})."
            ) from None
        self.smtp = smtp
        return smtp

    def send(self, out: Outgoing) -> None:
        """Hand one message to the server. Returns when it accepted it; raises TemporaryFailure (try later) or
        PermanentFailure (never)."""
        mime = build_mime(out, self.settings)
        smtp = self.smtp or self.open()
        try:
            smtp.sendmail(out.bounce_address(self.settings), [out.to_address], mime.as_bytes(policy=_WIRE))
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            self._classify(code, text, "refused the address")
        except smtplib.SMTPResponseException as exc:
            self._classify(exc.smtp_code, exc.smtp_error, "refused the message")
        except (OSError, smtplib.SMTPServerDisconnected, smtplib.SMTPException) as exc:
            self.close(quit_first=False)
            raise TemporaryFailure(
                f"The connection to the mail server was lost ({exc.__class__.__name__}: {exc})."
            ) from None

    def _classify(self, code: int, text: bytes | str, what: str) -> None:
        reply = _reply_text(code, text)
        if 500 <= code < 600:
            self._reset()
            raise PermanentFailure(f"The mail server {what}: {reply}.")
        if code == 421:  # the server is closing the connection
            self.close(quit_first=False)
        else:
            self._reset()
        raise TemporaryFailure(f"The mail server {what} for now: {reply}.")

    def _reset(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.rset()
            except (OSError, smtplib.SMTPException):
                self.close(quit_first=False)

    def close(self, quit_first: bool = True) -> None:
        smtp, self.smtp = self.smtp, None
        if smtp is None:
            return
        try:
            if quit_first:
                smtp.quit()
            else:
                smtp.close()
        except (OSError, smtplib.SMTPException):
            smtp.close()
