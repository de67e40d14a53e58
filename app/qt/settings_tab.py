"""The Settings screen: engine, generation, database and display settings, saved to the config file, and the
raters: who rates on this workstation (chosen from the log's rater list, kept in the config at once) and
adding a person to that list."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.bounds import (
    ANSWER_TOKENS_MAX,
    CONTEXT_MAX,
    KV_CACHE_MB_MAX,
    SEED_MAX,
    SEED_MAX_WIDGET,
    TEMPERATURE_MAX,
    max_threads,
)
from app.core.config import AppConfig, GenerationDefaults
from app.core.errors import AsclepiusError
from app.core.grounding import SenseInventory
from app.core.kvstate import STATE_DIR_NAME, DiskStateStore
from app.core.limits import answer_cap, context_warning, trained_context
from app.qt.app_context import AppContext
from app.qt.raters import RaterChooser, add_rater
from app.qt.screen_fit import scrolled
from app.qt.widgets import Banner
from app.qt.workers import describe_error
from resources import TASKS


def _spin(lo: int, hi: int, step: int = 1, special: str = "") -> QSpinBox:
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setSingleStep(step)
    if special:
        s.setSpecialValueText(special)
    return s


class SettingsTab(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._tips: dict[QWidget, str] = {}
        """Each policy-lockable control's own tooltip, put back when no policy sets it."""
        self.banner = Banner()
        self.threads = _spin(1, max_threads())
        self.n_ctx = _spin(0, CONTEXT_MAX, 256, "model default")
        self.n_ctx_info = QLabel()
        self.n_ctx_info.setWordWrap(True)
        self.n_ctx_info.setStyleSheet("color:#555;")
        self.kv_cache = _spin(0, KV_CACHE_MB_MAX, 64, "off")
        self.kv_cache.setSuffix(" MB")
        self.kv_cache.setToolTip("Memory for saved note states, so returning to a note skips reprocessing it")
        self.max_tokens = _spin(1, ANSWER_TOKENS_MAX, 16)
        self.caps_info = QLabel()
        self.caps_info.setWordWrap(True)
        self.caps_info.setStyleSheet("color:#555;")
        self.caps_info.setObjectName("answer-caps")
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, TEMPERATURE_MAX)
        self.temperature.setSingleStep(0.1)
        self.temperature.setSpecialValueText("0 (greedy)")
        self.seed = _spin(0, min(SEED_MAX, SEED_MAX_WIDGET))
        self.lookup = QCheckBox("Draft copied text (prompt lookup)")
        self.lookup.setToolTip(
            "Greedy answers only: text the answer copies from the note is checked several tokens per step. "
            "Where the model's top two tokens are nearly tied, the answer can differ from one decoded without it."
        )
        self.database = QLineEdit()
        self.database.setPlaceholderText(str(ctx.paths.database))
        self.db_browse = browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_db)
        self.note_text = QCheckBox("Store note text in the log")
        self.note_text.setToolTip("Off: the log keeps only each note's sha256 and length")
        self.preread = QCheckBox("Read the note while I type")
        self.preread.setToolTip("Process a pasted note in the background before Ask, so the answer starts sooner")
        self.font_size = _spin(7, 32)
        self.font_size.setSuffix(" pt")
        self.senses = QLineEdit()
        self.senses.setPlaceholderText("none: expansions are aligned, their senses not checked")
        self.senses.setMinimumWidth(120)
        senses_browse = QPushButton("Browse…")
        senses_browse.clicked.connect(self._browse_senses)

        eng = QGroupBox("Inference engine")
        f1 = QFormLayout(eng)
        f1.addRow("CPU threads", self.threads)
        f1.addRow("Context window", self.n_ctx)
        f1.addRow("", self.n_ctx_info)
        f1.addRow("Note-state (KV) cache budget", self.kv_cache)
        self.purge = purge = QPushButton("Delete kept note states")
        purge.setToolTip("Note states kept on disk so notes stay warm after a restart (they encode note text)")
        purge.clicked.connect(self.purge_kept_states)
        f1.addRow("Kept across restarts", purge)
        f1.addRow("", self.preread)
        gen = QGroupBox("Answers")
        f2 = QFormLayout(gen)
        f2.addRow("Maximum answer tokens", self.max_tokens)
        f2.addRow("", self.caps_info)
        f2.addRow("Temperature", self.temperature)
        f2.addRow("Seed", self.seed)
        f2.addRow("", self.lookup)
        ground = QGroupBox("Grounding")
        f5 = QFormLayout(ground)
        f5.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        senses_row = QHBoxLayout()
        senses_row.addWidget(self.senses, 1)
        senses_row.addWidget(senses_browse)
        f5.addRow("Abbreviation sense inventories", senses_row)
        senses_hint = QLabel(
            "A folder of abbreviation sense lists (tab- or comma-separated: abbreviation, sense). An expansion "
            "that is not a known sense of a listed abbreviation is flagged as unusual. None ships with the app."
        )
        senses_hint.setWordWrap(True)
        senses_hint.setStyleSheet("color:#555;")
        f5.addRow("", senses_hint)
        data = QGroupBox("Evaluation log")
        f3 = QFormLayout(data)
        f3.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        row = QHBoxLayout()
        row.addWidget(self.database, 1)
        row.addWidget(browse)
        self.database.setMinimumWidth(120)
        f3.addRow("Database location", row)
        f3.addRow("", self.note_text)
        hint = QLabel("Off: only each note's sha256 and length are kept.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color:#555;")
        f3.addRow("", hint)
        raters = self._raters_box()
        disp = QGroupBox("Display")
        f4 = QFormLayout(disp)
        f4.addRow("Font size", self.font_size)
        save = QPushButton("&Save settings")
        save.clicked.connect(self.save)
        revert = QPushButton("Revert")
        revert.clicked.connect(self.load)
        btns = QHBoxLayout()
        btns.addStretch(1)
        btns.addWidget(revert)
        btns.addWidget(save)
        where = QLabel(
            f"Saved to {ctx.paths.config_file} (readable by you alone). Window size and the last tab "
            "are kept separately; note text never is."
        )
        where.setWordWrap(True)
        where.setStyleSheet("color:#555;")
        self.policy_info = QLabel()
        self.policy_info.setObjectName("policy-info")
        self.policy_info.setWordWrap(True)
        self.policy_info.setStyleSheet("color:#34495e; font-weight:bold;")
        self.dirty_label = QLabel()
        self.dirty_label.setStyleSheet("color:#8a4b00; font-weight:bold;")
        btns.insertWidget(0, self.dirty_label, 1)
        content = QWidget()
        lay = QVBoxLayout(content)
        lay.addWidget(self.banner)
        lay.addWidget(self.policy_info)
        top = QHBoxLayout()
        col1, col2 = QVBoxLayout(), QVBoxLayout()
        col1.addWidget(eng)
        col1.addWidget(gen)
        col1.addWidget(ground)
        col2.addWidget(data)
        col2.addWidget(raters)
        col2.addWidget(disp)
        col1.addStretch(1)
        col2.addStretch(1)
        top.addLayout(col1, 1)
        top.addLayout(col2, 1)
        lay.addLayout(top)
        lay.addWidget(where)
        lay.addLayout(btns)
        lay.addStretch(1)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scrolled(content))
        ctx.config_changed.connect(self.load)
        ctx.engine_changed.connect(self._show_context)
        self.load()
        for w in (self.threads, self.n_ctx, self.kv_cache, self.max_tokens, self.seed, self.font_size):
            w.valueChanged.connect(self._form_changed)
        self.temperature.valueChanged.connect(self._form_changed)
        self.database.textChanged.connect(self._form_changed)
        self.senses.textChanged.connect(self._form_changed)
        self.note_text.toggled.connect(self._form_changed)
        self.preread.toggled.connect(self._form_changed)
        self.lookup.toggled.connect(self._form_changed)
        self.n_ctx.valueChanged.connect(self._show_context)
        self.max_tokens.valueChanged.connect(self._show_caps)
        self._show_caps()

    def _raters_box(self) -> QGroupBox:
        """Choose yourself from the log's rater list, or add a person to it (the choice applies at once)."""
        box = QGroupBox("Raters")
        form = QFormLayout(box)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.rater = RaterChooser(self.ctx)
        self.new_rater = QLineEdit()
        self.new_rater.setPlaceholderText("a person's name as it should appear in the log")
        self.new_rater.setMinimumWidth(120)
        self.new_rater.returnPressed.connect(self.add_rater)
        add = QPushButton("Add &rater")
        add.clicked.connect(self.add_rater)
        row = QHBoxLayout()
        row.addWidget(self.new_rater, 1)
        row.addWidget(add)
        form.addRow("You rate as", self.rater)
        form.addRow("New rater", row)
        hint = QLabel(
            "Ratings and votes are stored under the chosen name. The list belongs to the evaluation log: "
            "add each person once, then each chooses themselves here or in the Rate panel."
        )
        hint.setWordWrap(True)
        hint.setStyleSheet("color:#555;")
        form.addRow("", hint)
        return box

    def add_rater(self) -> None:
        """Add the typed name to the log's rater list and rate as them (people add themselves first)."""
        name = self.new_rater.text().strip()
        if not name:
            self.banner.show_error("Type the new rater's name first.")
            return
        add_rater(self.ctx, name, self._rater_added, lambda text: self.banner.show_error(f"Rater not added: {text}"))

    def _rater_added(self, name: str) -> None:
        self.new_rater.clear()
        self.banner.show_info(f"Added {name} to the raters; you now rate as them.")

    # -- unsaved changes and the real context size -------------------------------------------------
    def is_dirty(self) -> bool:
        try:
            return self.config_from_form() != self.ctx.config
        except ValueError:
            return True

    def _form_changed(self) -> None:
        self.dirty_label.setText("Unsaved changes" if self.is_dirty() else "")

    def _show_context(self) -> None:
        """Say the number the engine will really use, not just "model default"."""
        m, cfg = self.ctx.model, self.ctx.config.engine
        if self.n_ctx.value():
            text = f"{self.n_ctx.value():,} tokens for every model."
            if m is not None and (warning := context_warning(m, self.n_ctx.value())):
                text += f" Warning: {warning}."
        elif m is not None:
            used = cfg.default_context(m.context_length)
            text = f"Model default: {used:,} tokens for {m.name} (its file says {m.context_length:,}"
            text += f"; capped at {cfg.max_ctx:,} to bound memory)." if used < m.context_length else ")."
            if warning := context_warning(m, used):
                text += f" Warning: {warning}."
            elif trained_context(m) < m.context_length:
                text += f" It was trained on {trained_context(m):,}-token sequences."
        else:
            text = f"Model default: the model's trained context, capped at {cfg.max_ctx:,} tokens."
        self.n_ctx_info.setText(text)
        self.n_ctx.setSpecialValueText(
            f"model default ({cfg.default_context(m.context_length):,})" if m is not None else "model default"
        )

    def _show_caps(self) -> None:
        """The global setting caps each task's own answer limit (the ask service's rule): show what applies."""
        setting = self.max_tokens.value()
        parts = [f"{t.name} {answer_cap(t.max_tokens, setting).tokens}" for t in TASKS]
        capped = sum(answer_cap(t.max_tokens, setting).source == "setting" for t in TASKS)
        head = (
            f"A cap on each task's own limit; {capped} of {len(TASKS)} tasks are cut to {setting}."
            if capped
            else "A cap on each task's own limit; every task keeps its own."
        )
        self.caps_info.setText(head + " Per task: " + ", ".join(parts) + ".")

    def load(self) -> None:
        c = self.ctx.config
        self.threads.setValue(c.engine.n_threads)
        self.n_ctx.setValue(c.engine.n_ctx)
        self.kv_cache.setValue(c.engine.kv_cache_mb)
        self.max_tokens.setValue(c.generation.max_tokens)
        self.temperature.setValue(c.generation.temperature)
        self.seed.setValue(c.generation.seed)
        self.lookup.setChecked(c.engine.lookup)
        self.database.setText(c.database)
        self.note_text.setChecked(c.store_note_text)
        self.preread.setChecked(c.preread_note)
        self.font_size.setValue(c.font_size)
        self.senses.setText(c.abbreviation_senses)
        self._show_policy()
        self._show_context()
        if hasattr(self, "dirty_label"):
            self._form_changed()

    def _show_policy(self) -> None:
        """Each control a policy file sets is disabled and says who set it (it shows the value in force)."""
        policy = self.ctx.config.policy
        for w in (self.database, self.db_browse, self.note_text, self.purge):
            self._tips.setdefault(w, w.toolTip())  # the first call sees each control's own tooltip
        fixed = []
        for key, what, widgets in (
            ("log_path", "the evaluation log's location", (self.database, self.db_browse)),
            ("store_note_text", "whether note text is stored", (self.note_text,)),
        ):
            note = policy.lock_note(key)
            for w in widgets:
                w.setEnabled(note is None)
                w.setToolTip(note or self._tips[w])
            if note:
                fixed.append(f"{what} ({note[0].lower()}{note[1:]})")
        kept_off = policy.lock_note("note_state_cache") if not policy.policy.note_state_cache else None
        self.purge.setToolTip(f"Note states are not kept on disk. {kept_off}" if kept_off else self._tips[self.purge])
        if kept_off:
            fixed.append(f"note states kept on disk: off ({kept_off[0].lower()}{kept_off[1:]})")
        self.policy_info.setText("Fixed by policy: " + "; ".join(fixed) + "." if fixed else "")
        self.policy_info.setVisible(bool(fixed))

    def _browse_db(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self,
            "Evaluation log location",
            self.database.text() or str(self.ctx.paths.database),
            "SQLite database (*.db)",
            options=QFileDialog.Option.DontConfirmOverwrite,
        )
        if path:
            self.database.setText(path)

    def _browse_senses(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Abbreviation sense inventories", self.senses.text())
        if path:
            self.senses.setText(path)

    def config_from_form(self) -> AppConfig:
        """The form as a config; ValueError lists every invalid value at once (from the dataclasses)."""
        c = self.ctx.config
        # The settings this screen has no control for (parallel, the disk budget) keep their values.
        engine = replace(
            c.engine,
            n_threads=self.threads.value(),
            n_ctx=self.n_ctx.value(),
            kv_cache_mb=self.kv_cache.value(),
            lookup=self.lookup.isChecked(),
        )
        gen = GenerationDefaults(self.max_tokens.value(), round(self.temperature.value(), 2), self.seed.value())
        return replace(
            c,
            engine=engine,
            generation=gen,
            database=self.database.text().strip(),
            store_note_text=self.note_text.isChecked(),
            preread_note=self.preread.isChecked(),
            font_size=self.font_size.value(),
            abbreviation_senses=self.senses.text().strip(),
        )

    def purge_kept_states(self) -> None:
        store = DiskStateStore(self.ctx.paths.data_dir / STATE_DIR_NAME, 0)
        try:
            n, size = store.clear()
        except OSError as exc:
            self.banner.show_error(f"Kept note states not deleted: {describe_error(exc)}")
            return
        self.banner.show_info(f"Deleted {n} kept note state(s), {size / 1e6:.1f} MB.")

    def save(self) -> bool:
        try:
            new = self.config_from_form()
            if new.abbreviation_senses and new.abbreviation_senses != self.ctx.config.abbreviation_senses:
                SenseInventory.load(Path(new.abbreviation_senses).expanduser())  # a clear error now, not later
            self.ctx.update_config(new)
        except (ValueError, OSError, AsclepiusError) as exc:
            self.banner.show_error(f"Settings not saved: {describe_error(exc)}")
            return False
        self.banner.show_info(
            "Settings saved."
            + (" Reloading the model in the background." if self.ctx.engine_state == "loading" else "")
        )
        return True
