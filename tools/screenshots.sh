#!/bin/sh
# Screenshots under a real X server: Xvfb + openbox, at 1024x700 and at scale 2 (2048x1400, QT_SCALE_FACTOR=2).
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
case "${SHOTS:-both}" in
  both|1x) shoot 1024x700x24 1 "" "" ;;
esac
case "${SHOTS:-both}" in
  both|2x) shoot 2048x1400x24 2 "-2x" "ask,compare-blind,settings" ;;
esac
