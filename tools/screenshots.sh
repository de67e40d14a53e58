#!/bin/sh
# Screenshots under a real X server: Xvfb + openbox, at 1024x700 (every screen), 1366x768, 1440x900, at a
# 14 pt font (1024x700) and at scale 2 (2880x1800, QT_SCALE_FACTOR=2). SHOTS=1x|1366|1440|14pt|2x takes one set.
# Usage: tools/screenshots.sh [OUT_DIR]   (needs the xvfb and openbox Debian packages)
set -eu
out=${1:-docs/screenshots}
py=${PYTHON:-.venv/bin/python}
shoot() {  # $1 screen geometry, $2 scale factor, $3 file suffix, $4 screens to keep, $5.. more arguments
  geometry=$1 scale=$2 suffix=$3 keep=$4
  shift 4
  disp=:$(( ( $$ % 400 ) + 100 ))
  Xvfb "$disp" -screen 0 "$geometry" -nolisten tcp >/dev/null 2>&1 &
  xvfb=$!
  sleep 1
  DISPLAY=$disp openbox >/dev/null 2>&1 &
  wm=$!
  sleep 1
  status=0
  DISPLAY=$disp QT_QPA_PLATFORM=xcb QT_SCALE_FACTOR=$scale "$py" -m app.qt.screenshots "$out" --suffix="$suffix" \
    --only="$keep" "$@" || status=$?
  kill "$wm" "$xvfb" 2>/dev/null || true
  wait "$wm" "$xvfb" 2>/dev/null || true
  return "$status"
}
case "${SHOTS:-all}" in
  all|1x) shoot 1024x700x24 1 "" "" ;;
esac
case "${SHOTS:-all}" in
  all|1366) shoot 1366x768x24 1 "-1366" "ask,ask-run-all,compare-blind,history" ;;
esac
case "${SHOTS:-all}" in
  all|1440) shoot 1440x900x24 1 "-1440" "ask,ask-run-all,compare-blind,history" ;;
esac
case "${SHOTS:-all}" in
  all|14pt) shoot 1024x700x24 1 "-14pt" "ask,ask-run-all,compare-blind,history,statistics,settings" --font-size=14 ;;
esac
case "${SHOTS:-all}" in
  all|2x) shoot 2880x1800x24 2 "-2x" "ask,ask-run-all,compare-blind,settings" ;;
esac
