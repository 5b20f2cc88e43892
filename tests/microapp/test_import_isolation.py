"""microapp stands alone: standard library only, nothing from wsgiserver."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
before = set(sys.modules)
import microapp
loaded = {name.split('.')[0] for name in set(sys.modules) - before}
foreign = sorted(loaded - set(sys.stdlib_module_names) - {'microapp'})
print('wsgiserver' in sys.modules, foreign)
"""


def test_importing_microapp_loads_neither_wsgiserver_nor_third_party_modules():
    completed = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                               timeout=60, check=True)
    assert completed.stdout.strip() == "False []"


def test_public_api_is_listed_in_dunder_all():
    import microapp

    assert set(microapp.__all__) == {"App", "Request", "Response", "HTTPError",
                                     "GzipMiddleware", "FormLimits", "UploadedFile",
                                     "create_app", "app"}
    for name in microapp.__all__:
        assert getattr(microapp, name) is not None


def test_microapp_app_is_the_bundled_application_not_a_module():
    import microapp
    from microapp.application import App

    assert isinstance(microapp.app, App)
