"""The ASGI scope extension through which collab's WebSocket protocol
(collab/web/wsprotocol.py) offers the sync endpoint more than ASGI does. The endpoint
imports only its name: under uvicorn's own protocol or another ASGI server, the app
imports nothing private of uvicorn's."""

FRAMES = "collab.frames"
