"""Service handlers: plain classes, `handle(req: Request) -> list[Reply]` (sync or async).

They see only `smsgw.message` types; nothing here knows about SMPP or the reactor.
"""
