"""What a command works with: the services, and a daemon to talk to instead with --remote."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from ..paths import Paths
from ..services import Services

TYPE_CHECKING = False

if TYPE_CHECKING:
    from ..history.store import Store
    from .remote import RemoteRuns


class Context(Services):
    """The services, plus where runs are read and started: a daemon (``--remote``) or here."""

    def __init__(
        self,
        paths: Paths,
        cwd: Path,
        offline: bool = False,
        *,
        remote: str | None = None,
        token: str | None = None,
        cacert: str | None = None,
        insecure: bool = False,
    ) -> None:
        super().__init__(paths, cwd, offline)
        self.remote = remote  # a daemon's URL: runs are read and started there
        self.token = token
        self.cacert = cacert  # a CA file to trust for the daemon's certificate
        self.insecure = insecure  # trust any certificate (a self-signed one, for trying it out)

    @classmethod
    def from_environment(
        cls,
        *,
        offline: bool = False,
        remote: str | None = None,
        token: str | None = None,
        cacert: str | None = None,
        insecure: bool = False,
    ) -> Context:
        import os

        return cls(
            Paths.from_environment(),
            Path.cwd(),
            offline,
            remote=remote or os.environ.get("TOOLRUN_REMOTE") or None,
            token=token or os.environ.get("TOOLRUN_TOKEN") or None,
            cacert=cacert or os.environ.get("TOOLRUN_CACERT") or None,
            insecure=insecure,
        )

    @cached_property
    def remote_runs(self) -> RemoteRuns:
        from .remote import RemoteRuns

        assert self.remote is not None
        return RemoteRuns(self.remote, self.token, cacert=self.cacert, insecure=self.insecure)

    @property
    def runs(self) -> Store | RemoteRuns:
        """Where runs are read: the daemon's with --remote, this machine's store otherwise."""
        return self.remote_runs if self.remote else self.store
