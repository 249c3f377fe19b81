"""SMSC simulators for the carriers the gateway connects to: real SMPP over TCP, one per profile.

A separate program from the gateway that shares only its SMPP codec and framing. Entry points:
`carriers.main.start_simulators`, `carriers.smsc.Smsc`, `carriers.control.control_request`.
Importing this package never imports the global reactor.
"""
