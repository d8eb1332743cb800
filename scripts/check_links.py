#!/usr/bin/env python3
"""Checks every relative link and image in the repository's tracked Markdown files.

Usage: scripts/check_links.py [FILE.md ...]   (default: every file of `git ls-files '*.md'`)

A target must be a file or folder tracked by git (what a reader of a clone or of the web page
sees; a file that exists only here, such as results/ or data/, is reported as untracked).
An anchor (#part) must match a heading of the target page, using GitHub's rule for heading ids.
Links with a scheme (http:, https:, mailto:) are not checked, nor anything inside code.
Prints each broken link as `file:line: target` and exits 1 if there is any.
"""
import os
import re
import subprocess
import sys
from urllib.parse import unquote

# [text](target "title") and ![alt](target), text with at most one level of nested brackets
INLINE = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+("[^"]*"|\'[^\']*\'|\([^)]*\)))?\s*\)')
REFERENCE = re.compile(r'^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)')
HTML = re.compile(r'<(?:img|a|source)\b[^>]*?\b(?:src|href)\s*=\s*["\']([^"\']*)["\']', re.IGNORECASE)
SCHEME = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*:')
FENCE = re.compile(r'^ {0,3}(`{3,}|~{3,})')
CODE_SPAN = re.compile(r'(`+)(?:(?!\1).)+?\1')


def prose_lines(text, blank_code_spans=True):
    """(line number, line) for every line outside fenced and indented code, code spans blanked
    unless blank_code_spans is False."""
    fence = None
    previous_blank = True
    in_indented = False
    for number, line in enumerate(text.split('\n'), 1):
        match = FENCE.match(line)
        if fence:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            continue
        if match:
            fence = match.group(1)
            continue
        blank = not line.strip()
        indented = line.startswith('    ') or line.startswith('\t')
        in_indented = indented and (in_indented or previous_blank) or (blank and in_indented)
        previous_blank = blank
        if in_indented or blank:
            continue
        yield number, CODE_SPAN.sub(lambda m: ' ' * len(m.group(0)), line) if blank_code_spans else line


def heading_ids(path):
    """GitHub's ids for the headings of a Markdown file: lower case, punctuation dropped,
    spaces to hyphens, -1, -2... for repeats."""
    ids, seen = set(), {}
    with open(path, encoding='utf-8') as f:
        text = f.read()
    for _, line in prose_lines(text, blank_code_spans=False):
        match = re.match(r'^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$', line)
        if not match:
            continue
        title = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', match.group(1)).replace('`', '')  # link text only
        slug = re.sub(r'[^\w\- ]', '', title.lower()).replace(' ', '-')
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else '%s-%d' % (slug, count))
    return ids


def main():
    root = subprocess.run(['git', 'rev-parse', '--show-toplevel'], capture_output=True, text=True,
                          check=True).stdout.strip()
    os.chdir(root)
    tracked = set(subprocess.run(['git', 'ls-files'], capture_output=True, text=True,
                                 check=True).stdout.split('\n')) - {''}
    folders = {os.path.dirname(p) for p in tracked}
    for p in list(folders):
        while p:
            p = os.path.dirname(p)
            folders.add(p)
    pages = sys.argv[1:] or sorted(p for p in tracked if p.endswith('.md'))
    broken = 0
    checked = 0
    for page in pages:
        with open(page, encoding='utf-8') as f:
            text = f.read()
        for number, line in prose_lines(text):
            targets = [m.group(1) for m in INLINE.finditer(line)]
            targets += [m.group(1) for m in REFERENCE.finditer(line)]
            targets += [m.group(1) for m in HTML.finditer(line)]
            for target in targets:
                target = target.strip('<>')
                if SCHEME.match(target):
                    continue
                checked += 1
                path, _, anchor = target.partition('#')
                path = unquote(path.split('?')[0])
                if not path:
                    resolved = page
                elif path.startswith('/'):
                    resolved = os.path.normpath(path.lstrip('/'))
                else:
                    resolved = os.path.normpath(os.path.join(os.path.dirname(page), path))
                problem = None
                if resolved not in tracked and resolved not in folders:
                    problem = '' if not os.path.exists(resolved) else ' (not tracked by git)'
                elif anchor and resolved.endswith('.md') and resolved in tracked:
                    if unquote(anchor).lower() not in heading_ids(resolved):
                        problem = ' (no such heading)'
                if problem is not None:
                    print('%s:%d: %s%s' % (page, number, target, problem))
                    broken += 1
    if broken:
        print('check_links: %d broken of %d relative links' % (broken, checked), file=sys.stderr)
        return 1
    print('check_links: %d relative links in %d Markdown files, none broken' % (checked, len(pages)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
