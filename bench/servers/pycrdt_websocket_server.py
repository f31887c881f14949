"""pycrdt-websocket's WebsocketServer under uvicorn, for the benchmark.

Bound to 127.0.0.1:$PORT, in memory; a room per URL path.
"""

import os
from typing import Any

import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer

websocket_server = WebsocketServer()
websocket_app = ASGIServer(websocket_server)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "lifespan":
        await websocket_app(scope, receive, send)
        return
    async with websocket_server:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
