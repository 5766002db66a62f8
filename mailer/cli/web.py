"""`mailer serve`: the subscriber pages on their own (`mailer run` serves them beside the scheduler)."""

from __future__ import annotations

import click

from mailer.cli.common import command, insecure_links_option, settings
from mailer.cli.output import echo


@command(examples=["mailer serve", "mailer serve --host 0.0.0.0 --port 8080"])
@click.option("--host", default=None, help="Address to listen on (default: the web_host setting).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: the web_port setting).")
@insecure_links_option
def serve(host: str | None, port: int | None, allow_insecure_links: bool) -> None:
    """Serve the subscriber pages: unsubscribe, preferences, subscribe, archive.

    The pages mail confirmations and welcomes, so like `mailer run` it refuses a base_url
    readers cannot open when mailing through an SMTP server.
    """
    import uvicorn

    from mailer.publiclinks import require_usable_links
    from mailer.web.server import server_config

    require_usable_links(settings(), allow_insecure_links=allow_insecure_links)
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
