"""The `interest-stream` command line: one group, one module per command family.

`group` (the group, errors, entry-point commands), `options` (options shared by several
commands, with defaults read from Settings), `output` (consoles, progress, tables),
`embedded` (run, generate), `profiles` (profile get/similar/score/rank), `streaming`
(worker, init, publish, watch), `privacy` (forget), `calibrate` and `encoder`
(export-encoder). Every
command builds its parts through the composition root (`interest_stream.streams.app`).
"""

from interest_stream.streams.cli import (
    calibrate,
    embedded,
    encoder,
    privacy,
    profiles,
    streaming,
)
from interest_stream.streams.cli.group import main

__all__ = ["calibrate", "embedded", "encoder", "main", "privacy", "profiles", "streaming"]
