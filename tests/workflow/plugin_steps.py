"""Step kinds for tests only, loaded through WORKFLOW_PLUGINS=tests.workflow.plugin_steps.

* ``flaky``: fails its first ``fail_times`` attempts, then completes (retry tests).
* ``slow_note``: sleeps, then writes an inbox row in the step's transaction (crash and
  shutdown tests count those rows to prove the side effect happened exactly once).
* ``slow_call``: sleeps outside any transaction, like a slow HTTP call.
* ``change_status_then_sleep``: the real ``change_status``, then a pause before the step
  is recorded: a worker killed in the pause made the api call but recorded nothing.
"""

from __future__ import annotations

import time

from pydantic import Field

from workflow_service.steps import Step, StepConfig, StepContext, StepOutcome, register
from workflow_service.steps.change_status import ChangeStatus, ChangeStatusConfig
from workflow_service.steps.notify import deliver_in_app
from workflow_service.steps.recipients import Address


class FlakyConfig(StepConfig):
    fail_times: int = Field(ge=0, le=20)


@register
class Flaky(Step):
    kind = "flaky"
    Config = FlakyConfig

    def run(self, ctx: StepContext) -> StepOutcome:
        config: FlakyConfig = self.config  # type: ignore[assignment]
        if ctx.attempt <= config.fail_times:
            raise RuntimeError(f"flaky step failing on attempt {ctx.attempt}")
        return StepOutcome.completed({"attempt": ctx.attempt})


class SlowNoteConfig(StepConfig):
    seconds: float = Field(ge=0, le=60)
    recipient: str = "observer"


@register
class SlowNote(Step):
    kind = "slow_note"
    Config = SlowNoteConfig

    def run(self, ctx: StepContext) -> StepOutcome:
        config: SlowNoteConfig = self.config  # type: ignore[assignment]
        time.sleep(config.seconds)
        deliver_in_app(ctx, [Address(user=config.recipient)], "slow note", "")
        return StepOutcome.completed({"slept": config.seconds, "attempt": ctx.attempt})


class SlowCallConfig(StepConfig):
    seconds: float = Field(ge=0, le=60)


@register
class SlowCall(Step):
    kind = "slow_call"
    Config = SlowCallConfig
    transactional = False

    def run(self, ctx: StepContext) -> StepOutcome:
        config: SlowCallConfig = self.config  # type: ignore[assignment]
        time.sleep(config.seconds)
        return StepOutcome.completed({"slept": config.seconds})


class ChangeStatusThenSleepConfig(ChangeStatusConfig):
    seconds: float = Field(ge=0, le=60)


@register
class ChangeStatusThenSleep(ChangeStatus):
    kind = "change_status_then_sleep"
    Config = ChangeStatusThenSleepConfig

    def run(self, ctx: StepContext) -> StepOutcome:
        outcome = super().run(ctx)
        time.sleep(self.config.seconds)  # type: ignore[attr-defined]
        return outcome
