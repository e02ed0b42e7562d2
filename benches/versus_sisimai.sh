#!/usr/bin/env bash
# Whole-process speed of `bounced classify --format jsonl` beside the Perl library Sisimai (Debian's
# libsisimai-perl, `Sisimai->dump`), on the same files, in one run, pair by pair.
#
#   benches/versus_sisimai.sh [CORPUS_DIR] [COPIES] [ROUNDS]
#
# CORPUS_DIR (default ../shared/corpus/maildir) is copied COPIES times (default 10) into a temporary
# folder; each round times both programs over that folder, in alternating order, output to /dev/null,
# after one untimed pass of each warms the page cache. Prints each pair and the median ratio.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

corpus=${1:-../shared/corpus/maildir}
copies=${2:-10}
rounds=${3:-5}

if ! perl -MSisimai -e1 2>/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q libsisimai-perl >/dev/null
    else
        echo "versus_sisimai: Sisimai is missing: apt-get install libsisimai-perl" >&2
        exit 2
    fi
fi
[[ -d $corpus ]] || { echo "versus_sisimai: no folder $corpus" >&2; exit 2; }

cargo build --release --quiet
bounced=./target/release/bounced

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/set"
for ((i = 1; i <= copies; i++)); do
    for f in "$corpus"/*; do
        [[ -f $f ]] && cp "$f" "$work/set/$i-${f##*/}"
    done
done
files=$(find "$work/set" -type f | wc -l)

run_bounced() { "$bounced" classify --format jsonl "$work/set" >/dev/null; }
run_sisimai() { perl -MSisimai -e 'print Sisimai->dump($ARGV[0])' "$work/set" >/dev/null; }
seconds() {
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }'
}

run_bounced
run_sisimai
echo "files: $files ($copies copies of $corpus); $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$("$bounced" --version 2>/dev/null || echo bounced); Sisimai $(perl -MSisimai -e 'print $Sisimai::VERSION')"
ratios=()
for ((r = 1; r <= rounds; r++)); do
    if ((r % 2)); then
        b=$(seconds run_bounced)
        s=$(seconds run_sisimai)
    else
        s=$(seconds run_sisimai)
        b=$(seconds run_bounced)
    fi
    ratio=$(awk -v b="$b" -v s="$s" 'BEGIN { printf "%.1f", s / b }')
    ratios+=("$ratio")
    printf 'round %d: bounced %6.3f s (%6.0f msgs/s)  sisimai %6.3f s (%6.0f msgs/s)  ratio %5.1fx\n' \
        "$r" "$b" "$(awk -v n="$files" -v t="$b" 'BEGIN { print n / t }')" \
        "$s" "$(awk -v n="$files" -v t="$s" 'BEGIN { print n / t }')" "$ratio"
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "median ratio: ${median}x (Sisimai time / bounced time)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
