"""The admin HTTP API: bearer-token auth with named, role-bearing tokens, JSON in and out.

`api` holds what endpoints are made of (no Twisted: features import it), `auth` the token check,
`server` the twisted.web server and the service the gateway starts.
"""
