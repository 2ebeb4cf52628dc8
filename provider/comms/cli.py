"""`flask mail-inbound`: the product's inbound SMTP listener for replies and bounces."""

from __future__ import annotations

import signal
import threading

import click
from flask import current_app


@click.command("mail-inbound")
@click.option("--host", default=None, help="address to listen on (default MAIL_INBOUND_HOST, 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (default MAIL_INBOUND_PORT, 2525)")
def mail_inbound_command(host: str | None, port: int | None) -> None:
    """Receive replies and bounces for MAIL_RETURN_DOMAIN over SMTP until stopped (Ctrl-C or SIGTERM).

    Point the domain's MX record (or your mail server's transport for it) at this listener."""
    from provider.comms.inbound import InboundListener

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    listener = InboundListener(app, host, port).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(
        f"Receiving mail for {app.config['MAIL_RETURN_DOMAIN']} on {listener.host}:{listener.port} (Ctrl-C stops)"
    )
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
        click.echo("Stopped.")
