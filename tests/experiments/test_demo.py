import io

import pytest

from experiments import demo
from experiments.models import Experiment, Exposure, Result

pytestmark = pytest.mark.django_db


def test_demo_seed_creates_a_running_experiment_with_data_once():
    demo.seed(stdout=io.StringIO())
    demo.seed(stdout=io.StringIO())
    experiment = Experiment.objects.get(key=demo.DEMO_KEY)
    assert experiment.status == "running"
    assert Exposure.objects.filter(experiment=experiment).count() > 100
    assert Result.objects.filter(experiment=experiment).count() > Exposure.objects.filter(experiment=experiment).count()
