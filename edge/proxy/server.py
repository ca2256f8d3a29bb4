"""Run one edge process: the shopper-facing app and the admin app on two ports, one loop."""

from __future__ import annotations

import asyncio

import uvicorn

from edge.proxy.app import EdgeRuntime, create_admin_app, create_app
from edge.proxy.settings import ProxySettings

__all__ = ["serve"]


async def serve(settings: ProxySettings, host: str, port: int, admin_port: int | None) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's handlers stop both servers)."""
    runtime = EdgeRuntime.open(settings)
    app = create_app(settings, runtime)
    main = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            # The edge writes Date itself (a stored response keeps its origin's Date) and
            # names no server software; it is the first hop, so X-Forwarded-* from clients
            # are not trusted for the client address or scheme either.
            date_header=False,
            server_header=False,
            proxy_headers=False,
        )
    )
    servers = [main.serve()]
    if admin_port:
        admin = uvicorn.Server(
            uvicorn.Config(
                create_admin_app(lambda: runtime),
                host=host,
                port=admin_port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )

        # Both servers install signal handlers; the last one installed (admin) forwards the
        # exit to the main one through this watcher.
        async def follow() -> None:
            while not main.should_exit and not admin.should_exit:
                await asyncio.sleep(0.1)
            main.should_exit = admin.should_exit = True

        servers += [admin.serve(), follow()]
    await asyncio.gather(*servers)
