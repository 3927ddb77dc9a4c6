"""`cotal-tui demo`: a throwaway auth-mode space in motion, under the console.

Modules:

- :mod:`~cotal_tui.demo.cast` — the channel registry seed (general, review, team.backend durable;
  lounge live), the simulated agents and their roles/channels, the chatter's lines;
- :mod:`~cotal_tui.demo.timeline` — when the scripted cases happen (``Timeline()`` paced for a
  person, ``Timeline.fast()`` for tests and ``--fast``);
- :mod:`~cotal_tui.demo.agent` — ``SimAgent``: a real ``Endpoint`` (own creds, Plane-3 agent side)
  with a seeded behaviour loop (post, @mention, DM, anycast, working/waiting/idle);
- :mod:`~cotal_tui.demo.admin` — ``SpaceAdmin``: ACL row commit, creds re-issue, a kick through
  the system account (how the narrowing case is done for real);
- :mod:`~cotal_tui.demo.simulation` — ``DemoSimulation(space)``: ``prepare()`` / ``start()`` /
  ``stop()``, the operator's endpoint, the in-process daemon, the three cases, ``notes`` and
  ``pending_ops()`` across every agent;
- :mod:`~cotal_tui.demo.console` — ``DemoSource``: the console's ``MeshSource`` plus every
  agent's pending retries and the not-yet-bound daemon;
- :mod:`~cotal_tui.demo.run` — ``run_tui`` / ``run_plain``: the owner of the temp dir, the
  embedded server (stopped by pid), the simulation and the console;
- :mod:`~cotal_tui.demo.plain` — note lines for the ``--plain`` stream;
- :mod:`~cotal_tui.demo.tasks` — cancellation that cannot be swallowed.
"""
