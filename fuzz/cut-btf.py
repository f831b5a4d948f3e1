#!/usr/bin/env python3
"""Cuts the kernel's BTF (/sys/kernel/btf/vmlinux, 5+ MB) down to the
structs the tracer reads members of, for the `btf` fuzz target's seeds.

Kept: the named structs and every type they contain by value (embedded
structs and unions, anonymous members, arrays, typedefs, modifiers, ints,
enums), renumbered in their original order, with a string section holding
only their names. Pointers are kept but point to `void` (id 0): their
targets (most of the kernel) are not needed to place a member.

usage: cut-btf.py VMLINUX_BTF OUT [STRUCT...]
"""

import struct
import sys

# The structs `tracer::probes::kernel_layout::FIELDS` reads.
STRUCTS = ["task_struct", "files_struct", "fdtable", "file", "inode", "super_block",
           "dentry", "socket", "sock", "signal_struct"]

PTR, ARRAY, STRUCT, UNION, FUNC_PROTO = 2, 3, 4, 5, 13
ALIASES = {8, 9, 10, 11, 18}  # typedef, volatile, const, restrict, type tag


def extra_len(kind, vlen):
    if kind in (1, 14, 17):
        return 4
    if kind == ARRAY:
        return 12
    if kind in (STRUCT, UNION, 15, 19):
        return 12 * vlen
    if kind in (6, FUNC_PROTO):
        return 8 * vlen
    return 0


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    data = open(sys.argv[1], "rb").read()
    wanted = sys.argv[3:] or STRUCTS
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        "<HBBIIIII", data, 0)
    if magic != 0xEB9F:
        sys.exit("not little-endian BTF")
    types_raw = data[hdr_len + type_off:hdr_len + type_off + type_len]
    strings = data[hdr_len + str_off:hdr_len + str_off + str_len]

    def name(off):
        return strings[off:strings.index(b"\0", off)]

    types = [None]  # id 0: void
    at = 0
    while at < len(types_raw):
        name_off, info, size_or_type = struct.unpack_from("<III", types_raw, at)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        end = at + 12 + extra_len(kind, vlen)
        types.append(dict(name_off=name_off, info=info, st=size_or_type, kind=kind, vlen=vlen,
                          extra=bytearray(types_raw[at + 12:end])))
        at = end

    def refs(t):
        k = t["kind"]
        if k in ALIASES:
            return [t["st"]]
        if k == ARRAY:
            elem, index, _ = struct.unpack_from("<III", t["extra"], 0)
            return [elem, index]
        if k in (STRUCT, UNION):
            return [struct.unpack_from("<I", t["extra"], 12 * i + 4)[0] for i in range(t["vlen"])]
        return []

    keep = set()
    stack = [i for i, t in enumerate(types)
             if t and t["kind"] == STRUCT and name(t["name_off"]).decode() in wanted]
    while stack:
        i = stack.pop()
        if i == 0 or i in keep:
            continue
        keep.add(i)
        if types[i]["kind"] != PTR:
            stack.extend(refs(types[i]))
    order = sorted(keep)
    new_id = {old: new for new, old in enumerate(order, start=1)}
    new_id[0] = 0
    strs = bytearray(b"\0")
    str_offs = {b"": 0}

    def new_str(off):
        s = name(off)
        if s not in str_offs:
            str_offs[s] = len(strs)
            strs.extend(s + b"\0")
        return str_offs[s]

    out_types = bytearray()
    for i in order:
        t = types[i]
        k, extra, st = t["kind"], t["extra"], t["st"]
        if k == PTR:
            st = 0
        elif k in ALIASES:
            st = new_id[st]
        elif k == ARRAY:
            elem, index, n = struct.unpack_from("<III", extra, 0)
            struct.pack_into("<III", extra, 0, new_id[elem], new_id[index], n)
        elif k in (STRUCT, UNION):
            for m in range(t["vlen"]):
                n_off, ty, off = struct.unpack_from("<III", extra, 12 * m)
                struct.pack_into("<III", extra, 12 * m, new_str(n_off), new_id[ty], off)
        elif k == 6 or k == 19:  # enum values: names
            step = 8 if k == 6 else 12
            for m in range(t["vlen"]):
                n_off = struct.unpack_from("<I", extra, step * m)[0]
                struct.pack_into("<I", extra, step * m, new_str(n_off))
        out_types.extend(struct.pack("<III", new_str(t["name_off"]), t["info"], st) + extra)
    header = struct.pack("<HBBIIIII", magic, version, flags, 24, 0, len(out_types),
                         len(out_types), len(strs))
    with open(sys.argv[2], "wb") as f:
        f.write(header + out_types + strs)
    print(f"{sys.argv[1]}: {len(order)} of {len(types) - 1} types, "
          f"{24 + len(out_types) + len(strs)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
