"""The lab's delivery fixtures (a built lab, its serving system up in a variant), for a whole lab release
against a real MLflow server."""

from tests.delivery.conftest import built_dir, lab_dir, serving  # noqa: F401 - fixtures, registered by import
