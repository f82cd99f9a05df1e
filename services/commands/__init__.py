"""The `orgsync` sub-commands, one module per group; commands/cli.py puts them in one
parser.

Each module has its handlers (`cmd_*(ctx, args) -> exit code`) and an `add(command)` that
declares its sub-commands and their flags beside them.
"""
