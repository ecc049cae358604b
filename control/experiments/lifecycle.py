"""Starting and stopping experiments: the checks `control experiment start/stop` run before
the registry's compare-and-set (`bidscore.registry.Registry.start_experiment` /
`stop_experiment`).

Start refuses, before anything is written: an unknown model or version, a model without a
production alias (control defaults to it, and the servers fall back to it), invalid fields
(`bidscore.experiments.check_experiment`: share, key, treatment == control, ...), and an arm
whose artifact fails the integrity checks `control promote` runs (`control.promotion.
fetch_and_verify`: checksum, model file, fingerprint of the feature code running now). A second
running experiment on the model is the registry's ConflictError.

Stop with `promote="treatment"` promotes the treatment through `control.promotion.promote`
(the same integrity checks, gates and alias compare-and-set as `control promote`: the gates
compare the treatment with the version the production alias points at, both scored on the
same rows) and only then stops the experiment, recording `promoted`; a refused promotion
leaves the experiment running. Stopping returns all traffic to the production alias.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path

from bidscore.errors import ConflictError, InputError, NotFoundError
from bidscore.experiments import ARMS, Experiment, Guardrails, Mode, check_experiment
from bidscore.registry import Registry
from bidscore.settings import DEFAULT_ALIAS
from bidscore.store import ArtifactStore
from control.promotion import ExtraGate, PromotionResult, RowSource, fetch_and_verify, promote
from features.catalog import Catalog

GUARDRAIL_NAMES = ("calibration", "psi", "error-rate", "min-outcomes")


def parse_guardrails(values: list[str]) -> Guardrails:
    """`calibration=0.8:1.25`, `psi=0.25`, `error-rate=0.001`, `min-outcomes=50` over the
    defaults of `bidscore.experiments.Guardrails`."""
    fields: dict[str, float | int] = {}
    for value in values:
        name, sep, text = value.partition("=")
        name = name.strip()
        try:
            if not sep:
                raise ValueError
            if name == "calibration":
                low, high = (float(x) for x in text.split(":"))
                if not 0 < low < 1 < high:
                    raise InputError(
                        f"--guardrail calibration needs 0 < LOW < 1 < HIGH, got {text}"
                    )
                fields["calibration_low"], fields["calibration_high"] = low, high
            elif name == "psi":
                fields["max_psi"] = _positive(name, float(text))
            elif name == "error-rate":
                fields["max_error_rate_increase"] = _positive(name, float(text))
            elif name == "min-outcomes":
                fields["min_outcomes"] = int(_positive(name, int(text)))
            else:
                raise InputError(f"unknown guardrail {name!r}: use {', '.join(GUARDRAIL_NAMES)}")
        except ValueError:
            raise InputError(
                f"--guardrail {value!r}: expected calibration=LOW:HIGH, psi=X, error-rate=X"
                " or min-outcomes=N"
            ) from None
    return Guardrails(**fields)  # type: ignore[arg-type]


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise InputError(f"--guardrail {name} must be positive, got {value:g}")
    return value


def start(
    registry: Registry,
    store: ArtifactStore,
    *,
    name: str,
    model: str,
    treatment: str,
    control: str | None,
    share: float,
    key: str,
    mode: Mode,
    salt: str | None,
    guardrails: Guardrails | None,
    actor: str,
    reason: str,
    catalog: Catalog | None = None,
) -> Experiment:
    """Check everything, then record the running experiment (module docstring)."""
    if not registry.list_versions(model):
        known = sorted({v.model for v in registry.list_versions()})
        raise NotFoundError(f"unknown model {model!r} (registered: {', '.join(known) or 'none'})")
    production = registry.get_alias(model, DEFAULT_ALIAS)
    if production is None:
        raise InputError(
            f"{model} has no {DEFAULT_ALIAS!r} alias: an experiment runs beside production;"
            f" promote a version first (control promote {model} VERSION)"
        )
    if guardrails is not None and mode != "canary":
        raise InputError(f"--guardrail applies to --mode canary, not {mode}")
    if salt is not None and not salt:
        raise InputError("--salt must not be empty")
    if mode == "canary" and guardrails is None:
        guardrails = Guardrails()
    experiment = check_experiment(
        Experiment(
            name=name,
            model=model,
            mode=mode,
            control=control or production.version,
            treatment=treatment,
            share=share,
            key=key,
            salt=salt if salt is not None else secrets.token_hex(8),
            guardrails=guardrails,
        )
    )
    arms = {arm: registry.get_version(model, experiment.version_of(arm)) for arm in ARMS}
    with tempfile.TemporaryDirectory(prefix="bidscore-experiment-") as tmp:
        for arm, version in arms.items():
            fetch_and_verify(store, version, Path(tmp) / arm, catalog)
    return registry.start_experiment(experiment, actor=actor, reason=reason)


def stop(
    registry: Registry,
    store: ArtifactStore,
    name: str,
    *,
    actor: str,
    reason: str,
    promote_arm: str | None = None,
    rows: RowSource | None = None,
    extra_gates: list[ExtraGate] | None = None,
    catalog: Catalog | None = None,
) -> tuple[Experiment, PromotionResult | None]:
    """Stop `name` by compare-and-set; with `promote_arm`, promote that arm first."""
    if promote_arm not in (None, "treatment", "control"):
        raise InputError(f"--promote must be treatment or control, not {promote_arm!r}")
    experiment = registry.get_experiment(name)
    if not experiment.running:
        raise ConflictError(f"experiment {name!r} is already stopped")
    result = None
    if promote_arm is not None:
        version = experiment.version_of(promote_arm)  # type: ignore[arg-type]
        production = registry.get_alias(experiment.model, DEFAULT_ALIAS)
        if production is None or production.version != version:
            result = promote(
                registry,
                store,
                experiment.model,
                version,
                actor=actor,
                reason=reason or f"experiment {name}: promote {promote_arm}",
                rows=rows,
                catalog=catalog,
                extra_gates=extra_gates,
            )
    stopped = registry.stop_experiment(
        name,
        expected_generation=experiment.generation,
        actor=actor,
        reason=reason,
        promoted=promote_arm,
    )
    return stopped, result
