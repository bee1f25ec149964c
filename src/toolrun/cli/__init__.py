"""The command line: ``app.py`` parses arguments, the ``*_commands`` modules do the work."""
