#!/bin/sh
# Screenshots under a real X server: Xvfb + openbox, at 1024x700 (every screen), 1440x900 and at scale 2
# (2880x1800, QT_SCALE_FACTOR=2). SHOTS=1x|1440|2x takes one set only.
# Usage: tools/screenshots.sh [OUT_DIR]   (needs the xvfb and openbox Debian packages)
set -eu
out=${1:-docs/screenshots}
py=${PYTHON:-.venv/bin/python}
shoot() {  # $1 screen geometry, $2 scale factor, $3 file suffix, $4 screens to keep
  disp=:$(( ( $$ % 400 ) + 100 ))
  Xvfb "$disp" -screen 0 "$1" -nolisten tcp >/dev/null 2>&1 &
  xvfb=$!
  sleep 1
  DISPLAY=$disp openbox >/dev/null 2>&1 &
  wm=$!
  sleep 1
  status=0
  DISPLAY=$disp QT_QPA_PLATFORM=xcb QT_SCALE_FACTOR=$2 "$py" -m app.qt.screenshots "$out" --suffix="$3" --only="$4" \
    || status=$?
  kill "$wm" "$xvfb" 2>/dev/null || true
  wait "$wm" "$xvfb" 2>/dev/null || true
  return "$status"
}
case "${SHOTS:-all}" in
  all|1x) shoot 1024x700x24 1 "" "" ;;
esac
case "${SHOTS:-all}" in
  all|1440) shoot 1440x900x24 1 "-1440" "ask,ask-run-all,compare-blind,history" ;;
esac
case "${SHOTS:-all}" in
  all|2x) shoot 2880x1800x24 2 "-2x" "ask,ask-run-all,compare-blind,settings" ;;
esac
