#!/usr/bin/env python3
"""Fails when a function in agent/, probe/ or include/ is longer than 100 lines.

A function is a brace block whose head (the text since the previous ';', '{' or '}') holds a
parameter list and is not a control statement, found outside any other function; lambdas and
nested blocks count toward the function that holds them. Lines: from the head's first line to the
closing brace. Usage: check-function-length.py [--max N] [paths...]
"""
import os
import re
import subprocess
import sys

CONTROL = re.compile(r'^\s*(if|for|while|switch|catch|do|else|try)\b')
TYPE_HEAD = re.compile(r'\b(namespace|class|struct|union|enum)\b')


def strip(text):
    """Blanks comments, string and character literals, keeping newlines and offsets."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i))
            i = j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
        elif c == 'R' and text.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', text[i:])
            end = text.find(')' + m.group(1) + '"', i) if m else -1
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j]))
            i = j
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == '\\' else 1
            j = min(j + 1, n)
            out.append(c + ' ' * (j - i - 2) + c if j - i >= 2 else c)
            i = j
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def functions(path):
    text = strip(open(path, encoding='utf-8', errors='replace').read())
    text = re.sub(r'^\s*#.*$', lambda m: ' ' * len(m.group(0)), text, flags=re.M)
    depth, func_depth, head_start, start_line = 0, None, 0, 0
    for i, c in enumerate(text):
        if c == '{':
            if func_depth is None:
                head = text[head_start:i]
                if ')' in head and not CONTROL.match(head) and not TYPE_HEAD.search(
                        head.split('(')[0]):
                    func_depth = depth
                    first = head_start + (len(head) - len(head.lstrip()))
                    start_line = text.count('\n', 0, first) + 1
                    name = re.findall(r'([~\w:]+)\s*\(', head)
                    name = name[0] if name else '?'
            depth += 1
            head_start = i + 1
        elif c == '}':
            depth -= 1
            head_start = i + 1
            if func_depth is not None and depth == func_depth:
                end_line = text.count('\n', 0, i) + 1
                yield name, start_line, end_line - start_line + 1
                func_depth = None
        elif c == ';' and func_depth is None:
            head_start = i + 1


def main():
    args = sys.argv[1:]
    limit = 100
    if args[:1] == ['--max']:
        limit, args = int(args[1]), args[2:]
    top = subprocess.run(['git', 'rev-parse', '--show-toplevel'], capture_output=True,
                         text=True, check=True).stdout.strip()
    os.chdir(top)
    paths = args or ['agent', 'probe', 'include']
    files = subprocess.run(['git', 'ls-files', *paths], capture_output=True, text=True,
                           check=True).stdout.split()
    long = []
    for f in files:
        if f.endswith(('.cpp', '.hpp', '.h')):
            long += [(n, f, line, name) for name, line, n in functions(f) if n > limit]
    for n, f, line, name in sorted(long, reverse=True):
        print(f'{f}:{line}: {name} is {n} lines (limit {limit})')
    if long:
        print(f'check-function-length: {len(long)} function(s) over {limit} lines')
        return 1
    print(f'check-function-length: no function over {limit} lines in {" ".join(paths)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
