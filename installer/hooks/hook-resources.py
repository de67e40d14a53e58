"""PyInstaller hook: sample notes and the rubric/task JSON ship as package data of ``resources``."""

from PyInstaller.utils.hooks import collect_data_files

datas = collect_data_files("resources")
