"""USSD as a gateway channel: carrier variants, sessions and timeouts, and the contract with the
app that words the screens (handlers/ussd/ is that app: the menus).

    variants.py  the carrier's wire dialect, as data + pure functions (decode / encode TLVs)
    sessions.py  the session table (a schema component) and its store operations
    screen.py    how much one screen holds; pagination
    dialogue.py  Turn and DialogueApp: what the channel asks of the app
    channel.py   UssdChannel: accept, process, the timeout reaper
"""
