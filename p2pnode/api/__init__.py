"""The node's local HTTP API: FastAPI routers composed in `app.py`, served by hypercorn."""
