#!/usr/bin/env bash
# Run annvq through the *upstream* ann-benchmarks runner (erikbern/ann-benchmarks) in --local
# mode, next to upstream's own faiss-ivf, then draw upstream's plot.
#
#   bench/ann_benchmarks/run_upstream.sh                 # fashion-mnist, annvq-saq annvq-pq faiss-ivf
#   DATASET=random-xs-20-euclidean ALGOS="annvq-saq" bench/ann_benchmarks/run_upstream.sh
#
# Environment (defaults in brackets):
#   ANN_BENCHMARKS_DIR  upstream checkout [/tmp/ann-benchmarks]; cloned from ANN_BENCHMARKS_GIT
#                       [https://github.com/erikbern/ann-benchmarks] when missing
#   AB_VENV             virtual environment for upstream + annvq [/tmp/ab-venv]; created with
#                       PYTHON [python3.11] and `pip install -r requirements.txt faiss-cpu -e <repo>`
#   DATASET             [fashion-mnist-784-euclidean]; <repo>/datasets/$DATASET.hdf5 is linked
#                       into the checkout's data/ so upstream downloads nothing
#   ALGOS               [annvq-saq annvq-pq faiss-ivf]
#   RUNS                run.py --runs [1]
#   THREADS             OMP/numba/BLAS threads [1: upstream's one-CPU rule]
#   FAISS_NLIST         faiss-ivf n_list values [1024]; QUERY_ARGS nprobe values
#                       [2,4,8,16,32,64] for faiss-ivf (annvq's come from its config.yml).
#                       No nprobe 1: upstream's Faiss.query returns faiss' -1 padding when the
#                       probed list holds < k rows (19 fashion-mnist queries at IVF1024, nprobe 1),
#                       and the runner's "Implementation returned duplicated candidates" assert
#                       then kills the worker (its batch path filters -1, single queries don't)
#   FORCE=1             re-run configurations whose results already exist
#   PLOT_OUT            copy of the plot [<repo>/docs/ann-benchmarks-fashion-mnist.png for
#                       fashion-mnist, else none]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
AB=${ANN_BENCHMARKS_DIR:-/tmp/ann-benchmarks}
VENV=${AB_VENV:-/tmp/ab-venv}
PYTHON=${PYTHON:-python3.11}
DATASET=${DATASET:-fashion-mnist-784-euclidean}
ALGOS=${ALGOS:-"annvq-saq annvq-pq faiss-ivf"}
RUNS=${RUNS:-1}
THREADS=${THREADS:-1}
FAISS_NLIST=${FAISS_NLIST:-1024}
QUERY_ARGS=${QUERY_ARGS:-2,4,8,16,32,64}
if [[ -z "${PLOT_OUT+x}" && "$DATASET" == fashion-mnist-784-euclidean ]]; then
  PLOT_OUT=$REPO/docs/ann-benchmarks-fashion-mnist.png
fi
PLOT_OUT=${PLOT_OUT:-}

log() { echo "[run_upstream $(date +%H:%M:%S)] $*"; }

# 1. upstream checkout, with bench/ann_benchmarks/annvq dropped into its algorithms/
if [[ ! -f "$AB/run.py" ]]; then
  log "cloning upstream into $AB"
  git clone --depth 1 "${ANN_BENCHMARKS_GIT:-https://github.com/erikbern/ann-benchmarks}" "$AB"
fi
rm -rf "$AB/ann_benchmarks/algorithms/annvq"
cp -r "$REPO/bench/ann_benchmarks/annvq" "$AB/ann_benchmarks/algorithms/annvq"
rm -rf "$AB/ann_benchmarks/algorithms/annvq/__pycache__"

# 2. the data set, linked (upstream's get_dataset only downloads when data/<name>.hdf5 is missing)
mkdir -p "$AB/data"
if [[ -f "$REPO/datasets/$DATASET.hdf5" ]]; then
  ln -sf "$REPO/datasets/$DATASET.hdf5" "$AB/data/$DATASET.hdf5"
fi

# 3. a separate environment: upstream's pinned requirements + faiss-cpu + this annvq checkout
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q -r "$AB/requirements.txt" faiss-cpu -e "$REPO"
fi
PY="$VENV/bin/python"

# 4. definitions: annvq's config.yml as shipped, upstream's faiss config cut to faiss-ivf with
#    FAISS_NLIST x QUERY_ARGS (its full grid, 9 n_list x 6 nprobe, takes hours on 2 cores)
DEFS="$AB/.annvq-definitions"
rm -rf "$DEFS"; mkdir -p "$DEFS/annvq" "$DEFS/faiss"
cp "$AB/ann_benchmarks/algorithms/annvq/config.yml" "$DEFS/annvq/config.yml"
"$PY" - "$AB/ann_benchmarks/algorithms/faiss/config.yml" "$DEFS/faiss/config.yml" \
    "$FAISS_NLIST" "$QUERY_ARGS" <<'PYEOF'
import sys, yaml
src, dst, nlist, qargs = sys.argv[1:]
cfg = yaml.safe_load(open(src))
entries = [e for e in cfg["float"]["any"] if e["name"] == "faiss-ivf"]
for e in entries:
    e["run_groups"] = {"base": {"args": [[int(x) for x in nlist.split(",")]],
                                "query_args": [[int(x) for x in qargs.split(",")]]}}
yaml.safe_dump({"float": {"any": entries}}, open(dst, "w"))
PYEOF

export OMP_NUM_THREADS=$THREADS NUMBA_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS \
       MKL_NUM_THREADS=$THREADS

# 5. upstream's runner, one algorithm at a time
cd "$AB"
force=(); [[ "${FORCE:-0}" == 1 ]] && force=(--force)
failed=()
for algo in $ALGOS; do
  t0=$SECONDS
  logf="/tmp/run_upstream-$DATASET-$algo.log"
  # upstream's worker loop (`while not queue.empty()`) can fork before multiprocessing.Queue's
  # feeder thread has written the definitions, so the worker exits without running anything
  # ("Terminating 1 workers" right after "Order:"); configurations that did run are skipped
  # on a retry, so retrying is safe.
  for attempt in 1 2 3 4 5; do
    log "run.py --local --dataset $DATASET --algorithm $algo --runs $RUNS (attempt $attempt)"
    set +e
    "$PY" run.py --local --dataset "$DATASET" --algorithm "$algo" --runs "$RUNS" \
        --definitions "$DEFS" "${force[@]}" 2>&1 | tee "$logf"
    rc=${PIPESTATUS[0]}
    set -e
    if [[ $rc != 0 ]]; then
      if grep -q "Nothing to run" "$logf"; then
        log "$algo: every configuration has results (FORCE=1 re-runs them)"; break
      fi
      log "$algo: run.py failed (rc $rc); log in $logf"; exit "$rc"
    fi
    if grep -q "^Process Process-" "$logf"; then
      # the runner's exit status stays 0 when its worker process dies
      log "$algo: the runner's worker crashed (traceback in $logf)"; failed+=("$algo"); break
    fi
    grep -q "Trying to instantiate" "$logf" && break
    log "$algo: the worker ran nothing (upstream queue race); retrying"
    force=()
  done
  log "$algo done in $((SECONDS - t0)) s"
done

# 6. upstream's plot (recall on a logit axis, QPS on a log axis, as upstream's README does)
out="results/$DATASET.png"
log "plot.py --dataset $DATASET -> $AB/$out"
"$PY" plot.py --dataset "$DATASET" --x-scale logit --y-scale log -o "$out"
if [[ -n "$PLOT_OUT" ]]; then
  install -m 644 "$out" "$PLOT_OUT"; log "plot copied to $PLOT_OUT"
fi
if (( ${#failed[@]} )); then
  log "FAILED (worker crashed, results incomplete): ${failed[*]}"; exit 1
fi
