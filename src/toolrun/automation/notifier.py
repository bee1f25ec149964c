"""Notifications as runs end: the engine's listener that writes a run's deliveries to the
outbox (outbox.py), and what this process does with them next. Light to import (it is on the
path of every run when config.toml names channels); sending is delivery.py's."""

from __future__ import annotations

from ..errors import ToolrunError
from ..records import record
from .channels import notifications_from_config
from .outbox import Outbox

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config import Config
    from ..history.model import RunRecord
    from ..history.store import Store
    from ..toolchains.model import Toolchain
    from .formats import Verdict
    from .outbox import Delivery

LEASE = 120.0  # seconds a sender holds a delivery: past any request's timeout


@record(frozen=True)
class Policy:
    retry: float = 10.0  # seconds before the first retry; doubled each time
    give_up: float = 3600.0
    timeout: float = 10.0
    public_url: str = ""  # the base of links to runs' pages

    @classmethod
    def from_config(cls, config: Config) -> Policy:
        return cls(
            float(config.get("notify_retry")),
            float(config.get("notify_give_up")),
            float(config.get("notify_timeout")),
            str(config.get("public_url")),
        )


class Notifier:
    """Records a run's deliveries as it ends (an engine listener); a terminal sends them at
    the end of its command (``send_waiting``), a daemon's DeliveryLoop is woken instead."""

    def __init__(self, store: Store, config: Config) -> None:
        self.outbox = Outbox(store)
        self.notifications = notifications_from_config(config)
        self.policy = Policy.from_config(config)
        self.deliver_here = True
        self.recorded: Callable[[], None] | None = None  # the daemon's loop, woken
        self.problems: list[str] = []  # what could not be recorded or sent, for the front end
        self.outcomes: list[tuple[Delivery, str, Verdict]] = []
        self.waiting: list[str] = []  # runs whose deliveries this terminal sends at its end

    def run_finished(self, run: RunRecord, toolchain: Toolchain) -> None:
        if not self.notifications.rules:
            return
        try:
            names = self.outbox.record_run(run, self.notifications, adhoc=toolchain.is_adhoc)
        except ToolrunError as exc:
            self.problems.append(f"the notifications of run {run.id} were not recorded: {exc}")
            return
        if not names:
            return
        if not self.deliver_here:
            if self.recorded is not None:
                self.recorded()
            return
        self.waiting.append(run.id)

    def send_waiting(self) -> None:
        """At the end of a terminal's command: send what its runs recorded, once each."""
        from .delivery import send_now

        for run_id in self.waiting:
            try:
                due = self.outbox.claim(LEASE, run_id=run_id)
                self.outcomes += send_now(
                    self.outbox, self.notifications, due, self.policy, terminal=True
                )
            except ToolrunError as exc:
                self.problems.append(f"the notifications of run {run_id} were not sent: {exc}")
        self.waiting.clear()
