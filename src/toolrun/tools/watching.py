"""What a long piece of work (a download, a registry build) reports as it goes. The domain
reports; the CLI shows it as a progress bar at a terminal (cli/progress.py), and everyone
else, the daemon among them, lets it go unheard."""

from __future__ import annotations


class Watch:
    """Told of each piece of work: its label and size, then how much more is done, then its
    end. This one tells nobody."""

    def begin(self, label: str, total: int | None, *, unit: str = "bytes") -> None:
        """``unit``: ``bytes``, or what ``total`` counts (``versions``)."""

    def advance(self, amount: int) -> None:
        pass

    def end(self) -> None:
        pass


QUIET = Watch()
