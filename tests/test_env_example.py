from __future__ import annotations

from outreach.config import Settings
from tests.conftest import REPO


def test_env_example_lists_every_setting_and_loads() -> None:
    path = REPO / ".env.example"
    names = {
        line.split("=", 1)[0]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    }
    assert names == {name.upper() for name in Settings.model_fields}
    loaded = Settings(_env_file=path)  # type: ignore[call-arg]
    assert loaded.database_url == "sqlite:///./outreach.db"
    assert all(problem.severity == "warning" for problem in loaded.problems())
