"""Running Claude Code CLI processes: the binary, their environment, their options."""
