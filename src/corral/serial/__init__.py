"""The interactive serial console: the agent's one connection per VM to QEMU's serial socket,
fanned out to websockets (`hub`), and the decisions about it over plain bytes (`core`)."""
