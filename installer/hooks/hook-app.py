"""PyInstaller hook: Alembic runs the evaluation log's migrations from ``.py`` files it finds by package path
(``importlib.resources.files("app.store") / "migrations"``), so they ship as files, not only compiled."""

from PyInstaller.utils.hooks import collect_data_files, collect_submodules

_FILES = ["store/migrations/**/*.py", "store/**/*.mako", "store/*.ini", "core/evaluation/suites/*.json", "py.typed"]
datas = collect_data_files("app", include_py_files=True, includes=_FILES)
hiddenimports = collect_submodules("app") + collect_submodules("alembic") + ["logging.config"]
