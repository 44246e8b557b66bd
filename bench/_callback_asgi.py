"""The callback ingest server's ASGI app with one extra trivial endpoint, `/bench/bare`, served by the same
server processes: the baseline that the receiver's throughput and latency are compared with."""

from crm.ingest import application as ingest


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/bench/bare":
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b""})
        return
    await ingest(scope, receive, send)
