#!/usr/bin/env python3
"""Cuts a Go executable down to a small ELF that the tracer's parsers read
the same way: the seed corpus of the `gobinary` and `pclntab_tables` fuzz
targets (see README.md and make-corpus.sh).

A whole binary is megabytes, almost all of it code and tables for functions
the seeds do not need. The cut keeps:

- `.go.buildinfo` as is;
- a `.gopclntab` rebuilt with a few dozen of the functions (the ones the
  tracer probes or unwinds through, functions with inline trees, a wrapper,
  and the function after each, so that each one's end is right): their
  names, pc-value tables (pcsp, pcfile, pcln, pcdata), compilation-unit
  files and inline trees (in a new `go:func.*` blob at `moduledata.gofunc`),
  every offset rewritten; entry offsets, textStart and the layout per
  version are unchanged;
- `runtime.firstmoduledata` (its first words, patched to the new tables) in
  the section it was in, at its address;
- the original PT_LOADs' address ranges and file offsets (no bytes), then
  the code of `runtime.nanotime1` and `main.main` (PT_LOADs with bytes), so
  that the load base, the uprobe file offsets and the vDSO pointer decoded
  from code stay the same;
- in an unstripped binary, a `.symtab`/`.strtab` with the kept functions and
  the runtime variables the tracer looks up.

usage: cut-go-binary.py BINARY OUT.elf [OUT.pclntab]
The optional second output is the `pclntab_tables` seed: `[Go minor
u8][pclntab length u32 LE][pclntab][gofunc blob]`.
"""

import re
import struct
import sys

SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 2, 3, 8
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
PT_LOAD = 1
PF_X, PF_W, PF_R = 1, 2, 4
MAGIC_118, MAGIC_120 = 0xFFFFFFF0, 0xFFFFFFF1
PCDATA_INL_TREE_INDEX, FUNCDATA_INL_TREE = 2, 3
MODULEDATA_TEXT = 0xB0
MODULEDATA_KEEP = 0x200

# Functions the tracer probes, unwinds through or looks up by name.
WANTED = {
    "runtime.main", "main.main", "runtime.nanotime1", "runtime.goexit",
    "runtime.mstart", "runtime.rt0_go", "runtime.mcall", "runtime.systemstack",
    "runtime.systemstack_switch", "runtime.morestack", "runtime.asmcgocall",
    "crosscall2", "_cgo_topofstack", "runtime.cgocall", "runtime.newm",
    "runtime.newm1", "runtime.newosproc", "runtime.mexit", "runtime.handoffp",
    "runtime.startm", "runtime.retake", "runtime.entersyscall",
    "runtime.entersyscallblock", "runtime.exitsyscall", "runtime.exitsyscall0",
    "runtime.exitsyscallNoP", "runtime.stopTheWorldWithSema",
    "runtime.startTheWorldWithSema", "runtime.LockOSThread", "runtime.needm",
    "runtime.gopanic", "runtime.sigpanic", "syscall.Syscall", "syscall.Syscall6",
    "syscall.RawSyscall6", "syscall.read", "syscall.write",
    "internal/runtime/syscall.Syscall6", "runtime/internal/syscall.Syscall6",
    "os.(*File).Read", "os.(*File).Write", "internal/poll.(*FD).Read",
    "internal/poll.(*FD).Write", "os.ReadFile", "time.Sleep",
}
# Runtime variables kept in a cut `.symtab`.
DATA_SYMBOLS = {
    "runtime.sched", "runtime.allm", "runtime.allp", "runtime.gomaxprocs",
    "runtime.ncpu", "runtime.numCPUStartup", "runtime.vdsoClockgettimeSym",
    "runtime.firstmoduledata", "runtime.buildVersion",
}
MAX_INLINED = 10
MAX_MAIN = 24


def cstr(d, off):
    end = d.index(b"\0", off)
    return d[off:end]


def varint(d, p):
    v = shift = 0
    while True:
        b = d[p]
        p += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, p


def pcvalues(d, start):
    """A pc-value table's values and its length in bytes."""
    p, first, value, values = start, True, -1, []
    while True:
        uv, p = varint(d, p)
        if uv == 0 and not first:
            return values, p - start
        first = False
        value += -((uv + 1) >> 1) if uv & 1 else uv >> 1
        values.append(value)
        _, p = varint(d, p)


class Elf:
    def __init__(self, data):
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            sys.exit("not a 64-bit little-endian ELF")
        self.data = data
        (self.type, self.machine, _, self.entry, phoff, shoff, _, _, phentsize,
         phnum, shentsize, shnum, shstrndx) = struct.unpack_from(
            "<HHIQQQIHHHHHH", data, 16)
        self.sections = []
        for i in range(shnum):
            f = struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
            self.sections.append(dict(zip(
                ["name_off", "type", "flags", "addr", "off", "size", "link",
                 "info", "align", "entsize"], f)))
        strtab = self.sections[shstrndx]["off"]
        for s in self.sections:
            s["name"] = cstr(data, strtab + s["name_off"]).decode()
        self.segments = []
        for i in range(phnum):
            f = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
            self.segments.append(dict(zip(
                ["type", "flags", "off", "vaddr", "paddr", "filesz", "memsz",
                 "align"], f)))

    def section(self, *names):
        for name in names:
            for s in self.sections:
                if s["name"] == name:
                    return s
        return None

    def bytes(self, s):
        if s["type"] == SHT_NOBITS:
            return b""
        return self.data[s["off"]:s["off"] + s["size"]]

    def section_at(self, addr):
        for s in self.sections:
            if (s["flags"] & SHF_ALLOC and s["type"] != SHT_NOBITS
                    and s["addr"] <= addr < s["addr"] + s["size"]):
                return s
        return None

    def read(self, addr, n):
        for p in self.segments:
            if p["type"] == PT_LOAD and p["vaddr"] <= addr and addr + n <= p["vaddr"] + p["filesz"]:
                at = p["off"] + addr - p["vaddr"]
                return self.data[at:at + n]
        return None

    def symbols(self):
        tab = self.section(".symtab")
        if tab is None:
            return []
        strs = self.sections[tab["link"]]["off"]
        out = []
        for off in range(tab["off"], tab["off"] + tab["size"], 24):
            name, info, other, shndx, value, size = struct.unpack_from("<IBBHQQ", self.data, off)
            out.append((cstr(self.data, strs + name).decode(errors="replace"),
                        info, other, value, size))
        return out


class Pclntab:
    def __init__(self, d):
        self.d = d
        self.magic = struct.unpack_from("<I", d, 0)[0]
        if self.magic not in (MAGIC_118, MAGIC_120) or d[7] != 8:
            sys.exit(f"unsupported pclntab magic {self.magic:#x}")
        (self.nfunc, self.nfiles, self.text_start, self.funcname_off, self.cu_off,
         self.filetab_off, self.pctab_off, self.pcln_off) = struct.unpack_from("<8Q", d, 8)
        self.func_id_at = 36 if self.magic == MAGIC_118 else 40
        self.inl_size, self.inl_name_at = (20, 12) if self.magic == MAGIC_118 else (16, 4)

    def ftab(self, i):
        return struct.unpack_from("<II", self.d, self.pcln_off + 8 * i)

    def func(self, i):
        entry, foff = self.ftab(i)
        at = self.pcln_off + foff
        d = self.d
        name_off, _, _, pcsp, pcfile, pcln, npcdata, cu = struct.unpack_from("<iiIIIIII", d, at + 4)
        fid = self.func_id_at
        nfuncdata = d[at + fid + 3]
        fixed = fid + 4
        pcdata = list(struct.unpack_from(f"<{npcdata}I", d, at + fixed))
        funcdata = list(struct.unpack_from(f"<{nfuncdata}I", d, at + fixed + 4 * npcdata))
        return dict(
            index=i, entry=entry, end=self.ftab(i + 1)[0], at=at,
            record=bytearray(d[at:at + fixed + 4 * (npcdata + nfuncdata)]),
            name=cstr(d, self.funcname_off + name_off).decode(),
            pcsp=pcsp, pcfile=pcfile, pcln=pcln, cu=cu, pcdata=pcdata,
            funcdata=funcdata, func_id=d[at + fid], flag=d[at + fid + 1])

    def table(self, off):
        """(values, bytes) of the pc-value table at `off` (0: none)."""
        if off == 0:
            return [], b""
        start = self.pctab_off + off
        values, n = pcvalues(self.d, start)
        return values, self.d[start:start + n]


def wrapper_id(minor):
    return 21 if minor <= 21 else 22 if minor <= 24 else 23


def moduledata_gofunc(minor):
    return 0x130 if minor <= 19 else 0x140 if minor <= 26 else 0x158


def go_minor(elf):
    s = elf.section(".go.buildinfo")
    data = elf.bytes(s)
    # Version string after the 32-byte header (varint length).
    n, p = varint(data, 32)
    version = data[p:p + n].decode()
    m = re.match(r"go1\.(\d+)", version)
    return version, int(m.group(1))


def find_moduledata(elf, pcaddr, funcname_off):
    pattern = struct.pack("<QQ", pcaddr, pcaddr + funcname_off)
    for s in elf.sections:
        data = elf.bytes(s)
        for i in range(0, max(0, len(data) - MODULEDATA_TEXT - 8), 8):
            if data[i:i + 16] == pattern:
                return s, s["addr"] + i, data[i:i + MODULEDATA_KEEP]
    return None, None, None


def select(tab, minor):
    funcs = [tab.func(i) for i in range(tab.nfunc)]
    chosen = set()
    inlined = wrappers = mains = 0
    for f in funcs:
        name = f["name"]
        has_tree = (len(f["pcdata"]) > PCDATA_INL_TREE_INDEX
                    and len(f["funcdata"]) > FUNCDATA_INL_TREE
                    and f["funcdata"][FUNCDATA_INL_TREE] != 0xFFFFFFFF
                    and f["pcdata"][PCDATA_INL_TREE_INDEX] != 0)
        if name in WANTED:
            chosen.add(f["index"])
        elif name.startswith("main.") and mains < MAX_MAIN:
            chosen.add(f["index"])
            mains += 1
        elif has_tree and inlined < MAX_INLINED and name.split(".")[0] in ("os", "syscall", "time", "runtime"):
            chosen.add(f["index"])
            inlined += 1
        elif f["func_id"] == wrapper_id(minor) and wrappers < 2:
            chosen.add(f["index"])
            wrappers += 1
    # The function after each, so that each chosen one ends where it did.
    chosen |= {i + 1 for i in chosen if i + 1 < tab.nfunc}
    return [funcs[i] for i in sorted(chosen)]


def rebuild(tab, funcs, gofunc_bytes):
    """A new pclntab with only `funcs`, and the new gofunc blob."""
    names = bytearray()
    name_offs = {}

    def name(s):
        if s not in name_offs:
            name_offs[s] = len(names)
            names.extend(s + b"\0")
        return name_offs[s]

    pctab = bytearray(b"\0")  # offset 0 means "no table"
    pc_offs = {}

    def pct(off):
        if off == 0:
            return 0, []
        if off not in pc_offs:
            values, raw = tab.table(off)
            pc_offs[off] = (len(pctab), values)
            pctab.extend(raw)
        return pc_offs[off]

    # Files: each CU block keeps the files the chosen functions use.
    cu_need = {}
    for f in funcs:
        _, files = pct(f["pcfile"])
        top = max([v for v in files if v >= 0], default=-1)
        cu_need[f["cu"]] = max(cu_need.get(f["cu"], -1), top)
    filetab = bytearray()
    file_offs = {}
    cutab = bytearray()
    cu_new = {}
    for cu, top in sorted(cu_need.items()):
        cu_new[cu] = len(cutab) // 4
        for k in range(top + 1):
            (foff,) = struct.unpack_from("<I", tab.d, tab.cu_off + 4 * (cu + k))
            if foff != 0xFFFFFFFF:
                if foff not in file_offs:
                    file_offs[foff] = len(filetab)
                    filetab.extend(cstr(tab.d, tab.filetab_off + foff) + b"\0")
                foff = file_offs[foff]
            cutab.extend(struct.pack("<I", foff))

    gofunc = bytearray()
    records = []
    for f in funcs:
        rec = f["record"]
        struct.pack_into("<i", rec, 4, name(cstr(tab.d, tab.funcname_off + struct.unpack_from("<i", rec, 4)[0])))
        for field, key in ((16, "pcsp"), (20, "pcfile"), (24, "pcln")):
            struct.pack_into("<I", rec, field, pct(f[key])[0])
        struct.pack_into("<I", rec, 32, cu_new.get(f["cu"], 0))
        fixed = tab.func_id_at + 4
        npcdata = len(f["pcdata"])
        inl_values = []
        for j, off in enumerate(f["pcdata"]):
            new, values = pct(off)
            if j == PCDATA_INL_TREE_INDEX:
                inl_values = values
            struct.pack_into("<I", rec, fixed + 4 * j, new)
        for j, off in enumerate(f["funcdata"]):
            new = 0xFFFFFFFF
            count = max(inl_values, default=-1) + 1
            if j == FUNCDATA_INL_TREE and off != 0xFFFFFFFF and count > 0 and gofunc_bytes is not None:
                tree = bytearray(gofunc_bytes[off:off + count * tab.inl_size])
                if len(tree) == count * tab.inl_size:
                    for k in range(count):
                        at = k * tab.inl_size + tab.inl_name_at
                        (old,) = struct.unpack_from("<i", tree, at)
                        struct.pack_into("<i", tree, at, name(cstr(tab.d, tab.funcname_off + old)))
                    while len(gofunc) % 4:
                        gofunc.append(0)
                    new = len(gofunc)
                    gofunc.extend(tree)
            struct.pack_into("<I", rec, fixed + 4 * (npcdata + j), new)
        records.append(rec)

    header_len = 72
    funcname_off = header_len
    cu_off = funcname_off + len(names)
    filetab_off = cu_off + len(cutab)
    pctab_off = filetab_off + len(filetab)
    pcln_off = (pctab_off + len(pctab) + 7) & ~7
    ftab = bytearray()
    body = bytearray()
    ftab_len = 8 * (len(funcs) + 1)
    for f, rec in zip(funcs, records):
        while (ftab_len + len(body)) % 4:
            body.append(0)
        ftab.extend(struct.pack("<II", f["entry"], ftab_len + len(body)))
        body.extend(rec)
    ftab.extend(struct.pack("<II", funcs[-1]["end"], 0))
    out = bytearray(tab.d[:8])
    out.extend(struct.pack("<8Q", len(funcs), len(file_offs), tab.text_start, funcname_off,
                           cu_off, filetab_off, pctab_off, pcln_off))
    out.extend(names + cutab + filetab + pctab)
    out.extend(b"\0" * (pcln_off - len(out)))
    out.extend(ftab + body)
    layout = dict(funcname=funcname_off, names=len(names), cu=cu_off, cus=len(cutab) // 4,
                  filetab=filetab_off, files=len(filetab), pctab=pctab_off,
                  pctabs=len(pctab), pcln=pcln_off, nfunc=len(funcs))
    return bytes(out), bytes(gofunc), layout


class Writer:
    """A minimal ELF64: sections with data at their addresses, PT_LOADs."""

    def __init__(self, elf):
        self.elf = elf
        self.sections = []  # (name, type, flags, addr, data, link, info, entsize, align)
        self.segments = []  # (flags, vaddr, section index or None, memsz)

    def add(self, name, data, addr=0, flags=0, type_=1, link=0, info=0, entsize=0, align=8):
        self.sections.append([name, type_, flags, addr, bytes(data), link, info, entsize, align])
        return len(self.sections)  # index after the null section

    def load(self, flags, index, memsz=None, vaddr=None, offset=0):
        self.segments.append((flags, vaddr, index, memsz, offset))

    def write(self, path):
        for a in self.sections:
            for b in self.sections:
                if a is not b and a[2] & SHF_ALLOC and b[2] & SHF_ALLOC and a[4] and b[4]:
                    if a[3] < b[3] + len(b[4]) and b[3] < a[3] + len(a[4]):
                        sys.exit(f"sections {a[0]} and {b[0]} overlap")
        shstr = bytearray(b"\0")
        name_offs = []
        for s in self.sections:
            name_offs.append(len(shstr))
            shstr.extend(s[0].encode() + b"\0")
        shstr_name = len(shstr)
        shstr.extend(b".shstrtab\0")
        phoff = 64
        off = phoff + 56 * len(self.segments)
        offsets = []
        for s in self.sections:
            off = (off + 15) & ~15
            offsets.append(off)
            off += len(s[4])
        shstr_off = off
        off += len(shstr)
        shoff = (off + 7) & ~7
        shnum = len(self.sections) + 2
        out = bytearray(shoff + 64 * shnum)
        out[:16] = b"\x7fELF\x02\x01\x01" + b"\0" * 9
        struct.pack_into("<HHIQQQIHHHHHH", out, 16, self.elf.type, self.elf.machine, 1,
                         self.elf.entry, phoff, shoff, 0, 64, 56, len(self.segments), 64,
                         shnum, shnum - 1)
        for i, (flags, vaddr, index, memsz, offset) in enumerate(self.segments):
            if index is None:
                p = (PT_LOAD, flags, offset, vaddr, vaddr, 0, memsz, 0x1000)
            else:
                s = self.sections[index - 1]
                n = len(s[4])
                p = (PT_LOAD, flags, offsets[index - 1], s[3], s[3], n, max(n, memsz or 0), 0x1000)
            struct.pack_into("<IIQQQQQQ", out, phoff + 56 * i, *p)
        for s, o in zip(self.sections, offsets):
            out[o:o + len(s[4])] = s[4]
        out[shstr_off:shstr_off + len(shstr)] = shstr
        for i, (s, o) in enumerate(zip(self.sections, offsets), start=1):
            name, type_, flags, addr, data, link, info, entsize, align = s
            struct.pack_into("<IIQQQQIIQQ", out, shoff + 64 * i, name_offs[i - 1], type_, flags,
                             addr, o, len(data), link, info, align, entsize)
        struct.pack_into("<IIQQQQIIQQ", out, shoff + 64 * (shnum - 1), shstr_name, SHT_STRTAB, 0,
                         0, shstr_off, len(shstr), 0, 0, 1, 0)
        with open(path, "wb") as f:
            f.write(out)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    data = open(sys.argv[1], "rb").read()
    elf = Elf(data)
    version, minor = go_minor(elf)
    pcsec = elf.section(".gopclntab", ".data.rel.ro.gopclntab")
    tab = Pclntab(elf.bytes(pcsec))
    pcaddr = pcsec["addr"]
    md_sec, md_addr, md = find_moduledata(elf, pcaddr, tab.funcname_off)
    gofunc_addr = None
    gofunc_bytes = None
    if md is not None:
        (gofunc_addr,) = struct.unpack_from("<Q", md, moduledata_gofunc(minor))
        s = elf.section_at(gofunc_addr)
        if s is not None:
            gofunc_bytes = elf.bytes(s)[gofunc_addr - s["addr"]:]
    text_start = tab.text_start
    if text_start == 0 and md is not None:
        (text_start,) = struct.unpack_from("<Q", md, MODULEDATA_TEXT)
    funcs = select(tab, minor)
    new_tab, gofunc, layout = rebuild(tab, funcs, gofunc_bytes)

    w = Writer(elf)
    # The original segments, first and without their bytes: the load base,
    # the executable segment's file offset (uprobe offsets), and the
    # writable ranges a load from code must land in to count as a variable.
    for p in elf.segments:
        if p["type"] == PT_LOAD:
            w.load(p["flags"], None, p["memsz"], p["vaddr"], p["off"])
    # Code the parsers read: runtime.nanotime1 (the vDSO pointer's load)
    # and main.main.
    for f in funcs:
        if f["name"] in ("runtime.nanotime1", "main.main"):
            start, size = text_start + f["entry"], f["end"] - f["entry"]
            code = elf.read(start, size)
            if code is not None:
                i = w.add(".text", code, start, SHF_ALLOC | SHF_EXECINSTR)
                w.load(PF_R | PF_X, i)
    i = w.add(pcsec["name"], new_tab, pcaddr, pcsec["flags"])
    w.load(PF_R, i)
    if gofunc and gofunc_addr is not None:
        # Go 1.27 puts go:func.* inside .gopclntab: give it its own name.
        name = elf.section_at(gofunc_addr)["name"]
        i = w.add(".go.func" if name == pcsec["name"] else name, gofunc, gofunc_addr, SHF_ALLOC)
        w.load(PF_R, i)
    bi = elf.section(".go.buildinfo")
    i = w.add(".go.buildinfo", elf.bytes(bi), bi["addr"], bi["flags"])
    w.load(PF_R | PF_W, i)
    if md is not None:
        md = bytearray(md)
        # funcnametab, cutab, filetab, pctab, pclntable, ftab: (ptr, len, cap).
        for at, off, n in ((0x08, layout["funcname"], layout["names"]),
                           (0x20, layout["cu"], layout["cus"]),
                           (0x38, layout["filetab"], layout["files"]),
                           (0x50, layout["pctab"], layout["pctabs"]),
                           (0x68, layout["pcln"], len(new_tab) - layout["pcln"]),
                           (0x80, layout["pcln"], layout["nfunc"] + 1)):
            struct.pack_into("<QQQ", md, at, pcaddr + off, n, n)
        i = w.add(md_sec["name"], md, md_addr, md_sec["flags"])
        w.load(PF_R | PF_W, i)
    syms = elf.symbols()
    if syms:
        kept_funcs = {f["name"] for f in funcs}
        strtab = bytearray(b"\0")
        symtab = bytearray(24)
        for name, info, other, value, size in syms:
            if name in kept_funcs or name in DATA_SYMBOLS:
                symtab.extend(struct.pack("<IBBHQQ", len(strtab), info, other, 0xFFF1, value, size))
                strtab.extend(name.encode() + b"\0")
        strndx = len(w.sections) + 2
        w.add(".symtab", symtab, type_=SHT_SYMTAB, link=strndx, info=1, entsize=24)
        w.add(".strtab", strtab, type_=SHT_STRTAB, align=1)
    w.write(sys.argv[2])
    if len(sys.argv) == 4:
        with open(sys.argv[3], "wb") as f:
            f.write(bytes([minor]) + struct.pack("<I", len(new_tab)) + new_tab + gofunc)
    print(f"{sys.argv[1]}: {version}, {len(funcs)} of {tab.nfunc} functions, "
          f"pclntab {len(tab.d)} -> {len(new_tab)} bytes, inline trees {len(gofunc)} bytes, "
          f"moduledata {'found' if md is not None else 'missing'}", file=sys.stderr)


if __name__ == "__main__":
    main()
