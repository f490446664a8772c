"""traces.linking.experiment_links: explicit attributes first, then the user's exposure."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from experiments.models import Exposure, Variant
from experiments.services import lifecycle
from experiments.snapshot import compile_experiment, get_snapshot, snapshot_reset
from prompts.models import PromptVersion
from tests.experiments.conftest import experiment_body, make_user
from traces.linking import Link, LinkQuery, experiment_links

pytestmark = pytest.mark.django_db

SEEN = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_snapshot():
    """No experiment snapshot cached by an earlier test."""
    snapshot_reset()
    yield
    snapshot_reset()


@pytest.fixture
def make_experiment(db):
    """Creates an experiment through the services; ``state`` running (default), paused, completed or draft."""
    operator = make_user(Role.OPERATOR)

    def make(*, state: str = "running", **overrides):
        experiment = lifecycle.experiment_create(actor=operator, data=experiment_body(**overrides))
        steps = {"draft": [], "running": ["start"], "paused": ["start", "pause"], "completed": ["start", "stop"]}
        for step in steps[state]:
            with TestCase.captureOnCommitCallbacks(execute=True):
                experiment = getattr(lifecycle, f"experiment_{step}")(actor=operator, experiment=experiment)
        snapshot_reset()
        return experiment

    return make


def variants_of(experiment) -> dict[str, Variant]:
    return {v.key: v for v in Variant.objects.filter(experiment=experiment).select_related("prompt_version")}


def expose(experiment, variant: Variant, user_id: str) -> None:
    Exposure.objects.create(experiment=experiment, variant=variant, user_id=user_id, first_seen_at=SEEN)


def users_by_assignment(experiment, *, inside: bool, count: int = 1) -> list[str]:
    """User ids the experiment's assignment puts inside it (with their variant key) or leaves out."""
    compiled = compile_experiment(experiment)
    found = []
    for number in range(10_000):
        user_id = f"user-{number}"
        if (compiled.assign(user_id) is not None) == inside:
            found.append(user_id)
            if len(found) == count:
                return found
    raise AssertionError("no such user")


def link_of(experiment, variant: Variant, version_id: int | None = None) -> Link:
    return Link(
        experiment_id=experiment.pk,
        variant_id=variant.pk,
        prompt_version_id=version_id if version_id is not None else variant.prompt_version_id,
    )


def test_an_empty_batch_has_no_answers():
    assert experiment_links([]) == []


def test_explicit_experiment_and_variant_link_with_the_variant_prompt_version(make_experiment):
    experiment = make_experiment()
    warm = variants_of(experiment)["warm"]
    answer = experiment_links([LinkQuery(user_id="anyone", experiment_key="greeting-tone", variant_key="warm")])
    assert answer == [link_of(experiment, warm)]
    assert warm.prompt_version_id is not None


def test_explicit_prompt_version_is_the_number_of_the_named_prompt(make_experiment):
    experiment = make_experiment()
    variants = variants_of(experiment)
    control_version = variants["control"].prompt_version
    # The span says it used the control's version of "support" while being in variant warm.
    [answer] = experiment_links(
        [
            LinkQuery(
                experiment_key="greeting-tone",
                variant_key="warm",
                prompt_type="support",
                prompt_version=control_version.version,
            )
        ]
    )
    assert answer == link_of(experiment, variants["warm"], control_version.pk)


def test_explicit_prompt_version_without_a_prompt_is_of_the_experiment_prompt_type(make_experiment):
    experiment = make_experiment()
    warm = variants_of(experiment)["warm"]
    number = warm.prompt_version.version
    [answer] = experiment_links([LinkQuery(experiment_key="greeting-tone", variant_key="warm", prompt_version=number)])
    assert answer == link_of(experiment, warm)
    assert PromptVersion.objects.get(pk=answer.prompt_version_id).prompt.key == "support"


def test_explicit_experiment_without_variant_takes_the_user_exposure(make_experiment):
    experiment = make_experiment()
    control = variants_of(experiment)["control"]
    expose(experiment, control, "u-exposed")
    [answer] = experiment_links([LinkQuery(user_id="u-exposed", experiment_key="greeting-tone")])
    assert answer == link_of(experiment, control)


def test_link_by_exposure_on_the_span_prompt_type(make_experiment):
    experiment = make_experiment()
    variants = variants_of(experiment)
    [user_id] = users_by_assignment(experiment, inside=True)
    # Stored in the variant assignment would not choose: the exposure, not the hash, decides.
    computed = compile_experiment(experiment).assign(user_id).key
    other = variants["warm" if computed == "control" else "control"]
    expose(experiment, other, user_id)
    answers = experiment_links([LinkQuery(user_id=user_id, prompt_type="support")])
    assert answers == [link_of(experiment, other)]


def test_link_by_exposure_in_a_paused_experiment(make_experiment):
    experiment = make_experiment(state="paused")
    warm = variants_of(experiment)["warm"]
    expose(experiment, warm, "u-paused")
    [user_inside] = users_by_assignment(experiment, inside=True)
    answers = experiment_links(
        [LinkQuery(user_id="u-paused", prompt_type="support"), LinkQuery(user_id=user_inside, prompt_type="support")]
    )
    # Paused: users exposed before keep their link; nobody new is assigned.
    assert answers == [link_of(experiment, warm), None]


def test_a_running_experiment_links_an_assigned_user_whose_exposure_is_not_written_yet(make_experiment):
    experiment = make_experiment()
    [user_id] = users_by_assignment(experiment, inside=True)
    assigned = variants_of(experiment)[compile_experiment(experiment).assign(user_id).key]
    assert experiment_links([LinkQuery(user_id=user_id, prompt_type="support")]) == [link_of(experiment, assigned)]


def test_no_link_without_prompt_type_user_experiment_or_coverage(make_experiment):
    experiment = make_experiment()
    [outside] = users_by_assignment(experiment, inside=False)
    [inside] = users_by_assignment(experiment, inside=True)
    answers = experiment_links(
        [
            LinkQuery(user_id=inside),  # no agentops.prompt
            LinkQuery(prompt_type="support"),  # no user
            LinkQuery(user_id=inside, prompt_type="billing"),  # no experiment on that prompt type
            LinkQuery(user_id=outside, prompt_type="support"),  # outside the experiment's coverage
            LinkQuery(),
        ]
    )
    assert answers == [None] * 5


def test_unknown_keys_link_nothing_and_raise_nothing(make_experiment):
    experiment = make_experiment()
    make_experiment(key="still-draft", state="draft")
    warm = variants_of(experiment)["warm"]
    expose(experiment, warm, "u1")
    answers = experiment_links(
        [
            LinkQuery(user_id="u1", prompt_type="support", experiment_key="no-such-experiment"),
            LinkQuery(user_id="u1", experiment_key="greeting-tone", variant_key="no-such-variant"),
            LinkQuery(user_id="u1", experiment_key="greeting-tone", variant_key="warm", prompt_version=999),
            LinkQuery(user_id="u1", prompt_type="support", prompt_version=999),
            LinkQuery(user_id="u1", experiment_key="still-draft", variant_key="control"),
            LinkQuery(user_id="u1", experiment_key="greeting-tone", variant_key="warm", prompt_version=0),
            LinkQuery(user_id="u1", experiment_key="greeting-tone", variant_key="warm", prompt_version="2"),
        ]
    )
    assert answers == [None] * 7


def test_attributes_contradicting_the_exposure_link_nothing(make_experiment):
    experiment = make_experiment()
    variants = variants_of(experiment)
    expose(experiment, variants["warm"], "u1")
    control_number = variants["control"].prompt_version.version
    warm_number = variants["warm"].prompt_version.version
    answers = experiment_links(
        [
            LinkQuery(user_id="u1", prompt_type="support", variant_key="control"),
            LinkQuery(user_id="u1", prompt_type="support", prompt_version=control_number),
            LinkQuery(user_id="u1", prompt_type="support", prompt_version=warm_number),
        ]
    )
    assert answers == [None, None, link_of(experiment, variants["warm"])]


def test_a_completed_experiment_named_explicitly_still_links_late_spans(make_experiment):
    experiment = make_experiment(state="completed")
    control = variants_of(experiment)["control"]
    expose(experiment, control, "u-late")
    answers = experiment_links(
        [
            LinkQuery(experiment_key="greeting-tone", variant_key="control"),
            LinkQuery(user_id="u-late", experiment_key="greeting-tone"),
            LinkQuery(user_id="u-late", prompt_type="support"),  # not live: no exposure link
        ]
    )
    assert answers == [link_of(experiment, control), link_of(experiment, control), None]


def test_answers_follow_the_query_order_with_repeats(make_experiment):
    experiment = make_experiment()
    variants = variants_of(experiment)
    expose(experiment, variants["control"], "u1")
    a = LinkQuery(user_id="u1", prompt_type="support")
    b = LinkQuery(experiment_key="greeting-tone", variant_key="warm")
    c = LinkQuery(user_id="u1", prompt_type="billing")
    assert experiment_links([a, b, c, a, b]) == [
        link_of(experiment, variants["control"]),
        link_of(experiment, variants["warm"]),
        None,
        link_of(experiment, variants["control"]),
        link_of(experiment, variants["warm"]),
    ]


def _mixed_batch(experiment, size: int) -> list[LinkQuery]:
    variants = variants_of(experiment)
    number = variants["warm"].prompt_version.version
    queries = []
    for index in range(size):
        user_id = f"user-{index}"
        kind = index % 4
        if kind == 0:
            queries.append(LinkQuery(user_id=user_id, prompt_type="support"))
        elif kind == 1:
            queries.append(LinkQuery(user_id=user_id, experiment_key="greeting-tone", variant_key="warm"))
        elif kind == 2:
            queries.append(LinkQuery(user_id=user_id, prompt_type="support", prompt_version=number))
        else:
            queries.append(LinkQuery(user_id=user_id, prompt_type="support", experiment_key="unknown"))
    return queries


def test_a_512_span_batch_takes_the_same_few_queries_as_a_small_one(make_experiment):
    experiment = make_experiment()
    variants = variants_of(experiment)
    for index in range(0, 512, 3):
        expose(experiment, variants["control" if index % 2 else "warm"], f"user-{index}")
    get_snapshot()  # built once per process and version, not per batch

    small_batch, batch = _mixed_batch(experiment, 8), _mixed_batch(experiment, 512)
    with CaptureQueriesContext(connection) as small:
        small_answers = experiment_links(small_batch)
    with CaptureQueriesContext(connection) as large:
        answers = experiment_links(batch)

    # The key no live experiment has (looked for among finished ones), the exposures, the versions.
    assert len(large.captured_queries) == len(small.captured_queries) == 3
    assert answers[:8] == small_answers
    assert len(answers) == 512
    by_kind = {kind: [a for i, a in enumerate(answers) if i % 4 == kind] for kind in range(4)}
    assert all(a == link_of(experiment, variants["warm"]) for a in by_kind[1])
    assert all(a is None for a in by_kind[3])
    exposed = {e.user_id: e.variant_id for e in Exposure.objects.filter(experiment=experiment)}
    for index in range(0, 512, 4):
        answer = answers[index]
        user_id = f"user-{index}"
        if user_id in exposed:
            assert answer.variant_id == exposed[user_id]
        else:
            assigned = compile_experiment(experiment).assign(user_id)
            assert (answer.variant_id if answer else None) == (assigned.id if assigned else None)
