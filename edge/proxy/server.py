"""Run one edge process: the shopper-facing app and the admin app on two ports, one loop."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import uvicorn

from edge.proxy.app import HELLO_PATH, EdgeRuntime, create_admin_app, create_app
from edge.proxy.hitpath import HitPath
from edge.proxy.protocol import HeadLimits, protocol_class
from edge.proxy.settings import ProxySettings
from edge.proxy.workers import reuse_port_socket

__all__ = ["serve"]


async def serve(
    settings: ProxySettings,
    host: str,
    port: int,
    admin_port: int | None,
    *,
    reuse_port: bool = False,
    peers: Sequence[str] = (),
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's handlers stop both servers); ``reuse_port``:
    bind the shopper port with SO_REUSEPORT, as each of several workers does; ``peers``: the
    other workers' admin URLs, whose figures this one's ``/metrics`` adds up."""
    runtime = EdgeRuntime.open(settings)
    app = create_app(settings, runtime)
    limits = HeadLimits(
        request_line_bytes=settings.max_request_line_bytes,
        header_bytes=settings.max_header_bytes,
        header_count=settings.max_headers,
        head_timeout_s=settings.head_timeout_s,
        body_timeout_s=settings.body_timeout_s,
    )
    hello = HELLO_PATH if settings.bench_hello else None
    hits = HitPath(runtime.http, runtime.planes, runtime.traffic, hello)
    main_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # httptools with the head limits, and every status 100-999 on the wire.
        http=protocol_class(limits, hits),
        timeout_keep_alive=max(1, round(settings.idle_timeout_s)),
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
    admin_config = (
        uvicorn.Config(
            create_admin_app(lambda: runtime, peers),
            host=host,
            port=admin_port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        if admin_port
        else None
    )
    # Both ports are bound before anything starts: a port in use is one error line and exit
    # status 1 (uvicorn's), not a half-started edge cancelled mid-way.
    if reuse_port:
        try:
            main_socket = reuse_port_socket(host, port)
        except OSError as exc:
            print(f"p13n edge: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
    else:
        main_socket = main_config.bind_socket()
    admin_socket = admin_config.bind_socket() if admin_config is not None else None
    main = uvicorn.Server(main_config)
    servers = [main.serve(sockets=[main_socket])]
    if admin_config is not None and admin_socket is not None:
        admin = uvicorn.Server(admin_config)

        # Both servers install signal handlers; the last one installed (admin) forwards the
        # exit to the main one through this watcher.
        async def follow() -> None:
            while not main.should_exit and not admin.should_exit:
                await asyncio.sleep(0.1)
            main.should_exit = admin.should_exit = True

        servers += [admin.serve(sockets=[admin_socket]), follow()]
    await asyncio.gather(*servers)
