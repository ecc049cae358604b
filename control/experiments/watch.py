"""`control experiment watch`: a loop a scheduler can run beside a canary.

Each round reads the experiment; once it is stopped (by anyone) the loop ends by itself.
Otherwise it measures the arms, evaluates the guardrails and, on a breach, stops the experiment
through the registry's compare-and-set (actor "watch", the breach as the reason): the servers
return all traffic to control on their next poll. A stop lost to someone else's stop is fine:
the experiment is stopped either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bidscore.errors import ConflictError, InputError
from bidscore.experiments import Experiment
from bidscore.registry import Registry
from control.experiments.guardrails import GuardrailResult, breach_reason

WATCH_ACTOR = "watch"

# One round: the experiment -> its guardrail results.
Check = Callable[[Experiment], list[GuardrailResult]]


@dataclass(frozen=True)
class WatchResult:
    outcome: str  # "breach" (watch stopped it) | "stopped" (already stopped) | "rounds done"
    experiment: Experiment
    rounds: int
    reason: str = ""


def watch(
    registry: Registry,
    name: str,
    check: Check,
    *,
    interval: float,
    max_iterations: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = print,
) -> WatchResult:
    if interval < 0:
        raise InputError(f"--interval must not be negative, got {interval:g}")
    first = registry.get_experiment(name)
    if first.guardrails is None:
        raise InputError(
            f"experiment {name!r} is a {first.mode} test without guardrails: watch needs a canary"
        )
    rounds = 0
    while True:
        experiment = registry.get_experiment(name)
        if not experiment.running:
            say(f"{name} is stopped (by {experiment.stopped_by}: {experiment.stop_reason})")
            return WatchResult("stopped", experiment, rounds, experiment.stop_reason or "")
        rounds += 1
        results = check(experiment)
        summary = "; ".join(f"{r.name} {r.state}" for r in results)
        reason = breach_reason(results)
        if reason is not None:
            try:
                stopped = registry.stop_experiment(
                    name,
                    expected_generation=experiment.generation,
                    actor=WATCH_ACTOR,
                    reason=reason,
                )
            except ConflictError:
                continue  # moved meanwhile: read it again (stopped by someone else)
            say(f"round {rounds}: {summary}; stopped {name}: {reason}")
            return WatchResult("breach", stopped, rounds, reason)
        say(f"round {rounds}: {summary}")
        if max_iterations is not None and rounds >= max_iterations:
            return WatchResult("rounds done", experiment, rounds)
        sleep(interval)
