"""The daemon's pages for people (``/ui/``): runs, a run's steps and live log, a form that
starts a toolchain, tools and workers, in English and Simplified Chinese.

Rendered on the server (Jinja2) from the same engine, store and event streams as the API;
a small script of our own (static/toolrun.js, plain ``EventSource``) makes them live, and
every page works without it. Imported only by the daemon.
"""
