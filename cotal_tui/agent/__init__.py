"""An agent as a program: the identity a cred carries and the headless JSON-lines agent.

Layer: above ``server`` and ``mesh`` (it builds an :class:`~cotal_tui.mesh.endpoint.Endpoint`
and reads creds with ``server.nats_jwt``), below ``console``, which uses the same identity when
the console runs as an agent. ``lines`` is the display-free line protocol (pure); ``session``
runs it over an endpoint; ``identity`` reads a cred's card.
"""
