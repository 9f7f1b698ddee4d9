#!/usr/bin/env bash
# Time README's first command as a newcomer runs it: a fresh clone of this repository, no pip
# cache, offline Hub; prints how long the install took and when the app first answered HTTP.
#
#   scripts/time_quickstart.sh        (port 7860 must be free)
set -u
d=$(mktemp -d); git clone -q "$(cd "$(dirname "$0")/.." && pwd)" "$d/p"; cd "$d/p"
cmd=$(python3 - <<'PY'
import re; s=open("README.md").read(); print(re.search(r"```bash\n(.*?)\n```", s, re.S).group(1))
PY
)
echo "command: $cmd"
t0=$(date +%s.%N)
# its own session, so that the app and everything it started can be stopped as one group
( export PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1; exec setsid bash -c "$cmd" ) > "$d/app.log" 2>&1 &
pid=$!
ti=""
until curl -s -o /dev/null -w "%{http_code}" http://127.0.0.1:7860/ 2>/dev/null | grep -q 200; do
  [ -z "$ti" ] && grep -q "Successfully installed" "$d/app.log" && ti=$(date +%s.%N)
  sleep 1; kill -0 $pid 2>/dev/null || { echo "app exited"; tail -20 "$d/app.log"; exit 1; }
done
t1=$(date +%s.%N)
grep -n "Successfully installed" "$d/app.log" | cut -c1-200
python3 -c "print(f'install {$ti-$t0:.0f} s; app up {$t1-$ti:.0f} s later; total {$t1-$t0:.0f} s')"
tail -4 "$d/app.log"
kill -- -"$pid" 2>/dev/null; sleep 1; rm -rf "$d"
