"""The ``mailhop`` command: Exchange's cmdlets as subcommands."""
