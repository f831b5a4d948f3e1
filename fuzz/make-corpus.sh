#!/usr/bin/env bash
# Regenerates the committed seed corpus, fuzz/seeds/<target>/ (README.md
# says what each seed is). Needs the Go toolchains `cargo xtask setup`
# installs, gcc (cgo), restic (Debian's package), python3 and a kernel with
# /sys/kernel/btf/vmlinux and readable /proc/kallsyms (as root).
#
#   fuzz/make-corpus.sh
set -euo pipefail
cd "$(dirname "$0")"
seeds=seeds
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

rm -rf "$seeds"
mkdir -p "$seeds"/{gobinary,pclntab_tables,btf,event_decode,kallsyms,recording}

# --- gobinary, pclntab_tables: Go programs from every installed toolchain,
# cut to the sections the parsers read (cut-go-binary.py).
toolchains=(/usr/lib/go-1.19/bin/go)
for venv in "${XDG_CACHE_HOME:-$HOME/.cache}"/gotracer/go/*/; do
    for go in "$venv"lib/*/site-packages/go/bin/go; do
        [[ -x $go ]] && toolchains+=("$go")
    done
done
cut() { # cut BINARY NAME [no-pclntab]
    if [[ ${3:-} == no-pclntab ]]; then
        python3 cut-go-binary.py "$1" "$seeds/gobinary/$2.elf"
    else
        python3 cut-go-binary.py "$1" "$seeds/gobinary/$2.elf" "$seeds/pclntab_tables/$2.bin"
    fi
}
for go in "${toolchains[@]}"; do
    export GOTOOLCHAIN=local GOFLAGS=-trimpath
    v=$("$go" env GOVERSION)
    build() { # build VARIANT DIR [FLAGS...]
        local variant=$1 dir=$2
        shift 2
        (cd "seedsrc/$dir" && "$go" build -o "$work/$v-$variant" "$@" main.go)
        # A stripped binary's pclntab is the unstripped one's.
        cut "$work/$v-$variant" "$v-$variant" "$([[ $variant == stripped ]] && echo no-pclntab)"
    }
    CGO_ENABLED=0 build default .
    CGO_ENABLED=0 build stripped . -ldflags=-s\ -w
    CGO_ENABLED=0 build pie . -buildmode=pie
    CGO_ENABLED=1 build cgo cgo
done
# Debian builds it with cgo, stripped.
cut /usr/bin/restic restic-cgo-stripped

# --- btf: the running kernel's BTF cut to the structs the tracer reads
# (cut-btf.py), all of them and a few only.
python3 cut-btf.py /sys/kernel/btf/vmlinux "$seeds/btf/vmlinux-layout"
python3 cut-btf.py /sys/kernel/btf/vmlinux "$seeds/btf/vmlinux-sock" sock socket

# --- event_decode: one record of each kind (the kind, then a deterministic
# pattern, as long as the longest record), and a truncated one.
python3 - "$seeds/event_decode" <<'EOF'
import random, struct, sys
rng = random.Random(7)
for kind in range(0, 17):
    body = bytes(rng.randrange(256) for _ in range(508))
    open(f"{sys.argv[1]}/kind-{kind}", "wb").write(struct.pack("<I", kind) + body)
open(f"{sys.argv[1]}/short", "wb").write(struct.pack("<I", 4) + bytes(20))
EOF

# --- kallsyms: the file_operations tables the tracer knows and their
# neighbours, with a module line; then the same with hidden addresses,
# and functions only (no CONFIG_KALLSYMS_ALL).
known=$(sed -n 's/^ *("\([a-z_]*\)", FopsKind::.*/\1/p' ../tracer/src/procinfo/kallsyms.rs | paste -sd'|')
{
    head -n 40 /proc/kallsyms
    grep -E -A2 " ($known)(\.[^ ]*)?\$" /proc/kallsyms | grep -v -- '^--$' || true
    grep -m 5 $'\t\[' /proc/kallsyms || true
} > "$seeds/kallsyms/real"
# This kernel may list functions only (no CONFIG_KALLSYMS_ALL): the tables
# as a kernel that has it would list them (synthetic addresses, and an LTO
# suffix on one).
{
    cat "$seeds/kallsyms/real"
    addr=$((0xffffffff82400000))
    for name in ${known//|/ }; do
        printf '%x d %s\n' $addr "$name"
        addr=$((addr + 0x140))
    done
    printf '%x r eventfd_fops.llvm.8812\n' $addr
} > "$seeds/kallsyms/with-tables"
sed 's/^[0-9a-f]*/0000000000000000/' "$seeds/kallsyms/real" > "$seeds/kallsyms/hidden"
grep -E '^[0-9a-f]+ [Tt] ' "$seeds/kallsyms/real" > "$seeds/kallsyms/functions-only"

du -sh "$seeds"/*
du -sh "$seeds"

# --- recording: the tracer's recording of tests/workloads/sleeper.go (2
# goroutines, 20 sleeps each: slow calls, P handoffs, threads, symbols),
# bounded to 12 KiB (so it holds a size-limit frame, past some of the
# slow calls), and the same cut inside a frame. Needs the tracer with its eBPF programs
# (target/debug/tracer, as `cargo xtask test` builds it).
(cd ../tests/workloads && GOTOOLCHAIN=local "${toolchains[-1]}" build -o "$work/sleeper" sleeper.go)
../target/debug/tracer record -o "$seeds/recording/sleeper.rec" --max-size 12K -- "$work/sleeper" -g 2 -n 20
head -c 5000 "$seeds/recording/sleeper.rec" > "$seeds/recording/sleeper-cut.rec"
