"""The twin domain engine: plain modules that agents, the CLI and evaluation all import."""
