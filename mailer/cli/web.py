"""`mailer serve`: the subscriber pages on their own (`mailer run` serves them beside the scheduler)."""

from __future__ import annotations

import click

from mailer.cli.common import command, settings
from mailer.cli.output import echo


@command(examples=["mailer serve", "mailer serve --host 0.0.0.0 --port 8080"])
@click.option("--host", default=None, help="Address to listen on (default: the web_host setting).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: the web_port setting).")
def serve(host: str | None, port: int | None) -> None:
    """Serve the subscriber pages: unsubscribe, preferences, subscribe, archive."""
    import uvicorn

    from mailer.web.server import server_config

    config = server_config(settings(), host=host, port=port)
    echo(f"Subscriber pages on http://{config.host}:{config.port} "
         f"(public address {settings().base_url}). Ctrl-C stops.")
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot listen, after logging why
        if server.started:
            raise
        raise click.ClickException(f"cannot serve on {config.host}:{config.port} (is the port in use?)") from None
