"""The command line: ``sslstudio [FOLDER]`` opens the window; subcommands run headless."""
