"""``make soak``'s security section runs every test ``docs/security.md`` names for a protection."""

import re
import sys

from tests.conftest import ROOT


def test_soak_runs_every_security_test_the_threat_model_names():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import soak
    finally:
        sys.path.remove(str(ROOT / "bench"))
    named = set(re.findall(r"tests/[a-z_/]+\.py", (ROOT / "docs" / "security.md").read_text()))
    outside_reliability = {path for path in named if not path.startswith("tests/reliability/")}
    assert set(soak.SECURITY_TESTS) == outside_reliability
    assert all((ROOT / path).exists() for path in soak.SECURITY_TESTS)
