import pytest

from tests.trainer.evaluation.standin_model import save_standin_export


@pytest.fixture(scope="session")
def standin_export(tmp_path_factory):
    return save_standin_export(str(tmp_path_factory.mktemp("standin") / "export"))
