#!/usr/bin/env python3
"""Writes docs/api.md from nn.h: a table of contents, the macros (the public #defines, and the
build options and environment variables of the manual at the top of nn.h), then every NNDEF
function and public type, grouped by the header's section banners, each with its contract.

Which comment is whose contract: a declaration's own trailing comment (`...; /* contract */`) is
its contract, and block comments above it introduce the group that follows (they print as a
paragraph); without a trailing comment, the block comment right above the declaration is its
contract. A comment that says "see above" is no contract: write the contract on the function.
Usage: scripts/gen_api_doc.py [OUTPUT]   (default docs/api.md)"""
import re
import sys

src = open("nn.h").read()
manual = src[:src.index("*/")]
public = src[src.index("#define NN_H_INCLUDED"):src.index("#endif /* NN_H_INCLUDED */")]
lines = public.split("\n")


def squash(block):
    text = " ".join(l.strip() for l in block)
    text = re.sub(r"^/\*+", "", text)
    text = re.sub(r"\*+/$", "", text)
    return re.sub(r"\s+", " ", text).strip()


def slug(heading):
    """GitHub's id for a heading (as scripts/check_links.py computes it)."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def cell(text):
    return text.replace("|", "\\|")


# ---- the manual's BUILD OPTIONS block: "NAME   description" with indented continuation lines
def manual_options():
    start = manual.index("BUILD OPTIONS")
    block = manual[start:manual.index("\n\n", start)].split("\n")[2:]
    options, environment, target = [], [], None
    target = options
    for line in block:
        if line.strip().startswith("Environment at run time"):
            target = environment
            continue
        m = re.match(r"^ {7}(\S.*?)\s{2,}(\S.*)$", line)
        if m:
            target.append([m.group(1).strip(), m.group(2).strip()])
        elif line.strip() and target:
            target[-1][1] += " " + line.strip()
    return options, environment


options, environment = manual_options()
option_names = set(n for name, _ in options for n in re.findall(r"NN_[A-Z0-9_]+", name))

# ---- the public part: sections, group paragraphs, declarations with contracts, macros
sections = []       # [title, [items]]; an item is ("text", paragraph) or ("decl", name, code, contract)
macros = []         # (name, value, doc)
pending = []        # block comments not yet given to a declaration
undocumented, see_above = [], []
i = 0
while i < len(lines):
    line = lines[i]
    m = re.match(r"\s+(\d)\. (.*)", line)
    if m and i > 0 and "=====" in lines[i - 1]:
        sections.append(["%s. %s" % (m.group(1), m.group(2)), []])
        pending = []
        i += 1
        continue
    stripped = line.strip()
    if stripped.startswith("/*") and not stripped.startswith("/* ===="):
        block = [line]
        while "*/" not in lines[i]:
            i += 1
            block.append(lines[i])
        if not stripped.startswith("/* ====") and "=====" not in block[-1]:
            pending.append(squash(block))
        i += 1
        continue
    m = re.match(r"^#define (NN_[A-Z0-9_]+) (\S+)\s*(?:/\*(.*)\*/)?\s*$", line)
    if m and not m.group(1).startswith("NN__") and m.group(1) not in option_names:
        doc = (m.group(3) or "").strip() or (pending[-1] if pending else "")
        macros.append((m.group(1), m.group(2), doc))
        i += 1
        continue
    if line.startswith("#"):
        pending = []
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
        inline = re.search(r";\s*/\*(.*)\*/\s*$", decl[-1])
        contract = inline.group(1).strip() if inline else ""
        if contract:
            decl[-1] = decl[-1][:inline.start()] + ";"
            paragraphs, pending = pending, []
        else:
            paragraphs, contract = pending[:-1], (pending[-1] if pending else "")
        pending = []
        code = "\n".join(decl)
        code = code.replace("NN_NODISCARD ", "")
        code = re.sub(r"\) NN__PRINTF_FORMAT\(\d+, \d+\);", ");", code)
        if code.startswith("NNDEF"):
            name = re.search(r"(\w+)\s*\(", code).group(1)
        else:
            fn = re.search(r"\(\*(\w+)\)", decl[0])
            name = fn.group(1) if fn else re.search(r"(\w+)\s*;\s*$", decl[-1]).group(1)
        if code.startswith("NNDEF") and not contract:
            undocumented.append(name)
        if contract.lower().startswith("see above"):
            see_above.append(name)
        items = sections[-1][1]
        items += [("text", p) for p in paragraphs]
        items.append(("decl", name, code, contract))
        i += 1
        continue
    i += 1

out = ["# nn.h API", "",
       "Generated from `nn.h` by `scripts/gen_api_doc.py`; the header is the source of truth. "
       "Functions that can fail return `nn_status` (`NN_OK` = 0) and leave a message in "
       "`nn_last_error()`; on failure nothing the caller owns has changed. Every function that "
       "returns `nn_status`, but `nn_set_error`, is declared `NN_NODISCARD` (left out below): "
       "gcc and clang warn when its status is ignored.", "",
       "## Contents", "",
       "- [Macros](#macros): [build options](#build-options), [environment](#environment)"]
for title, items in sections:
    names = ["[`%s`](#%s)" % (it[1], slug(it[1])) for it in items if it[0] == "decl"]
    out.append("- [%s](#%s): %s" % (title, slug(title), ", ".join(names)))
out += ["", "## Macros", "", "| macro | value | meaning |", "| --- | --- | --- |"]
for name, value, doc in macros:
    out.append("| `%s` | `%s` | %s |" % (name, value, cell(doc)))
out += ["", "### Build options", "", "Define them before including `nn.h`.", "",
        "| define | effect |", "| --- | --- |"]
for name, doc in options:
    out.append("| %s | %s |" % (" / ".join("`%s`" % n.strip() for n in name.split(" / ")), cell(doc)))
out += ["", "### Environment", "", "| variable | effect |", "| --- | --- |"]
for name, doc in environment:
    out.append("| `%s` | %s |" % (cell(name), cell(doc)))
for title, items in sections:
    out += ["", "## " + title, ""]
    for it in items:
        if it[0] == "text":
            out += [it[1], ""]
        else:
            out += ["### `%s`" % it[1], "", "```c", it[2], "```"]
            out += [it[3], ""] if it[3] else [""]
target = sys.argv[1] if len(sys.argv) > 1 else "docs/api.md"
open(target, "w").write("\n".join(out).rstrip("\n") + "\n")
if undocumented:
    print("functions without a contract comment:", ", ".join(undocumented))
if see_above:
    print("contracts that say \"see above\" (write the contract on the function):", ", ".join(see_above))
