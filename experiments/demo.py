"""Demo data for ``make run``: one running experiment with exposures and results (idempotent)."""

from __future__ import annotations

import random
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from experiments.models import Experiment
from experiments.services import lifecycle
from experiments.services.exposures import exposures_insert
from experiments.services.results import results_insert
from experiments.snapshot import compile_experiment
from prompts.models import PRODUCTION, Prompt, PromptLabel
from prompts.services import prompt_create, prompt_version_create

DEMO_KEY = "demo-greeting-tone"
DEMO_PROMPT_TYPE = "support"  # the prompt type the demo experiment tests (seed_demo prints a resolve call)
DEMO_USERS = 600


def seed(*, stdout) -> None:
    if Experiment.objects.filter(key=DEMO_KEY).exists():
        stdout.write(f"experiments: demo experiment '{DEMO_KEY}' already present")
        return
    with transaction.atomic():
        # The registry first: the neutral text is what "support" serves in production, and the
        # experiment's control names that same version (identical text is one version).
        prompt = Prompt.objects.filter(key="support").first() or prompt_create(
            actor=None, key="support", description="The support agent's system prompt (demo)."
        )
        if not PromptLabel.objects.filter(prompt=prompt, name=PRODUCTION).exists():
            prompt_version_create(
                actor=None,
                prompt=prompt,
                content="You are a helpful support agent.",
                message="demo: the neutral greeting",
                labels=[PRODUCTION],
                reuse_identical=True,
            )
        experiment = lifecycle.experiment_create(
            actor=None,
            data={
                "key": DEMO_KEY,
                "name": "Greeting tone (demo)",
                "hypothesis": "A warmer greeting raises the success rate without costing more tokens.",
                "target_prompt_type": "support",
                "primary_metric": "success_rate",
                "guardrail_metrics": ["tokens", "response_time_ms"],
                "user_percentage": 60,
                "variants": [
                    {
                        "key": "control",
                        "name": "Neutral",
                        "content": "You are a helpful support agent.",
                        "is_control": True,
                        "weight": 1,
                    },
                    {
                        "key": "warm",
                        "name": "Warm",
                        "content": "You are a warm, friendly support agent.",
                        "is_control": False,
                        "weight": 1,
                    },
                ],
            },
        )
        experiment = lifecycle.experiment_start(actor=None, experiment=experiment)
        experiment = Experiment.objects.prefetch_related("variants").get(pk=experiment.pk)
        _seed_data(experiment)
    stdout.write(f"experiments: demo experiment '{DEMO_KEY}' running with exposures and results")


def _seed_data(experiment: Experiment) -> None:
    rng = random.Random(42)
    compiled = compile_experiment(experiment)
    now = timezone.now()
    exposures, results = [], []
    for i in range(DEMO_USERS * 2):
        user_id = f"demo-creator-{i}"
        variant = compiled.assign(user_id)
        if variant is None:
            continue
        first_seen = now - timedelta(days=rng.uniform(0.5, 7))
        exposures.append((compiled.id, variant.id, user_id, first_seen))
        lift = 0.08 if variant.key == "warm" else 0.0
        for call in range(rng.randint(1, 6)):
            results.append(
                (
                    f"demo-{i}-{call}",
                    compiled.id,
                    variant.id,
                    user_id,
                    first_seen + timedelta(minutes=10 * call + 1),
                    rng.random() < 0.62 + lift,
                    max(50.0, rng.gauss(900, 250)),
                    max(1, int(rng.gauss(420 + (15 if lift else 0), 90))),
                    min(1.0, max(0.0, rng.gauss(0.7 + lift / 2, 0.12))),
                    rng.choice((-1, 0, 0, 1, 1)),
                    "demo-model-2026-01",
                )
            )
    exposures_insert(exposures)
    # The demo's history reaches a week back: the experiment started with its first exposure, so the
    # stats page's daily chart and "days running" read as they would for a real week-old experiment.
    if exposures:
        Experiment.objects.filter(pk=experiment.pk).update(started_at=min(e[3] for e in exposures))
    for start in range(0, len(results), 1000):
        results_insert(results[start : start + 1000])
