"""The display-free console: a `Source` folded into one immutable `Snapshot` per tick.

source.py    Source / Commands protocols and their input records (what an adapter provides)
snapshot.py  the Snapshot every surface renders (TUI, --plain, check)
verdict.py   the delivery-lease verdict table and the §5.9 channel-health words
model.py     ConsoleModel: buffer messages, build a Snapshot on tick()
commands.py  command objects, the `:` parser, gating (read-only) and outcome wording
plain.py     the --plain line stream and the check verdict
fixtures.py  FixtureSource / FixtureCommands over fixed data (tests, snapshots, bench)
adapter.py   MeshSource: the real Endpoint (+ in-process daemon) as Source and Commands
session.py   ConsoleSession: server resolution, endpoint, daemon, start/stop
"""
