#!/usr/bin/env bash
# NBD benchmark: replicad vs nbdkit's file plugin, same kind of file, same run.
#
#   bench/nbd/run.sh [-r SECONDS] [-n ROUNDS] [-d SCRATCH_DIR] [-w WORKLOADS]
#
# For each workload (4k random write QD32, 4k random read QD32, 1 MiB
# sequential write QD8; one fio job, one connection, fio's nbd engine) it
# measures both servers ROUNDS times, alternating which goes first, and
# prints each server's median, the ratio of the medians (replicad/nbdkit)
# and the median of the rounds' own ratios (paired). Both backing
# files are sparse files of the same size in SCRATCH_DIR (default /var/tmp),
# both served from the page cache, both preallocated by one full write pass
# before measuring. -w picks workloads by fio name (default
# randwrite,randread,write). Needs fio, nbdkit and Go.
set -euo pipefail
cd "$(dirname "$0")/../.."
runtime=10 rounds=3 scratch=/var/tmp size=2G workloads=randwrite,randread,write
while getopts "r:n:d:w:" o; do
  case $o in r) runtime=$OPTARG ;; n) rounds=$OPTARG ;; d) scratch=$OPTARG ;; w) workloads=$OPTARG ;; *) exit 2 ;; esac
done
for t in fio nbdkit go; do command -v $t >/dev/null || { echo "bench: $t is missing" >&2; exit 1; }; done

work=$(mktemp -d "$scratch/replicad-bench.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

go build -o "$work/replicad" ./cmd/replicad
go build -o "$work/repctl" ./cmd/repctl
port_nbdkit=$((20000 + RANDOM % 10000)) port_replicad=$((port_nbdkit + 1))

truncate -s "$size" "$work/nbdkit.img"
nbdkit -f -p "$port_nbdkit" -i 127.0.0.1 file "$work/nbdkit.img" &
pids+=($!)

cat > "$work/replicad.yaml" <<YAML
node: {name: bench}
control: {socket: $work/control.sock}
metrics: {listen: ""}
log: {level: warn}
nbd: {listen: ["tcp://127.0.0.1:$port_replicad"]}
volumes:
  - name: bench
    device: $work/replicad.img
    size: $size
YAML
"$work/replicad" run --config "$work/replicad.yaml" 2>"$work/replicad.log" &
pids+=($!)
for _ in $(seq 100); do "$work/repctl" --socket "$work/control.sock" status >/dev/null 2>&1 && break; sleep 0.1; done
"$work/repctl" --socket "$work/control.sock" create-md bench >/dev/null
"$work/repctl" --socket "$work/control.sock" up bench >/dev/null

uri_nbdkit="nbd://127.0.0.1:$port_nbdkit/"
uri_replicad="nbd://127.0.0.1:$port_replicad/bench"
# Same footprint for both: 1 GiB working set, written once before measuring.
span=1G
for uri in "$uri_nbdkit" "$uri_replicad"; do
  fio --name=fill --ioengine=nbd --uri="$uri" --rw=write --bs=1M --iodepth=8 --size=$span --output=/dev/null
done

# fio_metric URI RW BS QD -> IOPS (4k) or MB/s (1M)
fio_metric() {
  local out
  out=$(fio --name=b --ioengine=nbd --uri="$1" --rw="$2" --bs="$3" --iodepth="$4" --size=$span \
    --time_based --runtime="$runtime" --ramp_time=2 --output-format=terse --terse-version=3 | grep '^3;')
  if [ "$2" = randread ]; then
    [ "$3" = 4k ] && echo "$out" | cut -d';' -f8 || echo "$out" | awk -F';' '{printf "%d", $7/1024}'
  else
    [ "$3" = 4k ] && echo "$out" | cut -d';' -f49 || echo "$out" | awk -F';' '{printf "%.0f", $48/1024}'
  fi
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

printf '%-26s %12s %12s %8s %8s\n' workload nbdkit replicad ratio paired
for w in "randwrite 4k 32 IOPS" "randread 4k 32 IOPS" "write 1M 8 MB/s"; do
  set -- $w
  [[ ",$workloads," == *",$1,"* ]] || continue
  k=() r=()
  for i in $(seq "$rounds"); do
    if ((i % 2)); then
      k+=("$(fio_metric "$uri_nbdkit" "$1" "$2" "$3")"); r+=("$(fio_metric "$uri_replicad" "$1" "$2" "$3")")
    else
      r+=("$(fio_metric "$uri_replicad" "$1" "$2" "$3")"); k+=("$(fio_metric "$uri_nbdkit" "$1" "$2" "$3")")
    fi
  done
  km=$(printf '%s\n' "${k[@]}" | median) rm=$(printf '%s\n' "${r[@]}" | median)
  # each round measures both servers back to back: the median of the
  # rounds' ratios is robust to the machine's speed drifting between rounds
  pr=$(for i in "${!k[@]}"; do echo "${r[$i]} / ${k[$i]}" | bc -l; done | median)
  printf '%-26s %12s %12s %7.2fx %7.2fx   (%s: nbdkit %s; replicad %s)\n' "$1 $2 QD$3" "$km $4" "$rm $4" \
    "$(echo "$rm / $km" | bc -l)" "$pr" "$4" "${k[*]}" "${r[*]}"
done
