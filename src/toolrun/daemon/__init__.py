"""``toolrun daemon``: the engine and the store over HTTP (starlette, served by uvicorn)."""
