#!/usr/bin/env python3
"""Writes docs/api.md from nn.h's public section: every NNDEF function and public type, grouped
by the header's section banners, each with the comment that documents it in the header."""
import re, sys

src = open("nn.h").read()
public = src[src.index("#define NN_H_INCLUDED"):src.index("#endif /* NN_H_INCLUDED */")]
lines = public.split("\n")
out = ["# nn.h API", "",
       "Generated from `nn.h` by `scripts/gen_api_doc.py`; the header is the source of truth. "
       "Functions that can fail return `nn_status` (`NN_OK` = 0) and leave a message in "
       "`nn_last_error()`; on failure nothing the caller owns has changed.", ""]
comment = []
i = 0
undocumented = []
while i < len(lines):
    line = lines[i]
    m = re.match(r"\s+(\d)\. (.*)", line)
    if m and i > 0 and "=====" in lines[i - 1]:
        out += ["", "## %s. %s" % (m.group(1), m.group(2)), ""]
        comment = []
        i += 1
        continue
    if line.strip().startswith("/*") and not line.strip().startswith("/* ===="):
        block = [line]
        while "*/" not in lines[i]:
            i += 1
            block.append(lines[i])
        text = " ".join(l.strip().lstrip("/*").rstrip("*/").strip() for l in block)
        comment = [re.sub(r"\s+", " ", text).strip()]
        i += 1
        continue
    if line.startswith("NNDEF") or line.startswith("typedef"):
        decl = [line]
        if line.startswith("typedef") and line.rstrip().endswith("{"):
            while not lines[i].startswith("}"):
                i += 1
                decl.append(lines[i])
        else:
            while not re.sub(r"/\*.*?\*/\s*$", "", decl[-1]).rstrip().endswith(";"):
                i += 1
                decl.append(lines[i])
        code = "\n".join(decl)
        inline = re.search(r";\s*/\*(.*)\*/\s*$", decl[-1])
        doc = comment[0] if comment else (inline.group(1).strip() if inline else "")
        name = re.search(r"(\w+)\s*\(", code) if code.startswith("NNDEF") else re.search(r"}\s*(\w+);|(\w+);\s*(/\*.*)?$", decl[-1])
        out += ["```c", code, "```"]
        if doc:
            out += [doc, ""]
        elif code.startswith("NNDEF"):
            undocumented.append(name.group(1) if name else code)
            out += [""]
        comment = []
        i += 1
        continue
    if line.strip() == "":
        comment = [] if not comment else comment
    i += 1
target = sys.argv[1] if len(sys.argv) > 1 else "docs/api.md"
open(target, "w").write("\n".join(out) + "\n")
if undocumented:
    print("functions without a contract comment:", ", ".join(undocumented))
