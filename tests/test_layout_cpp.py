"""Short C++ functions: no function body in csrc/ over 100 lines, no binding init over 60.

A brace-matching scan, good enough for this code base (not a C++ parser): comments, string
and character literals (raw strings included) and preprocessor lines are blanked first, then
every `{` at namespace / class level whose header (the text since the previous `;`, `{` or
`}`) ends in a parameter list, optionally followed by qualifiers or a constructor's member
initializers, opens a function; its body runs to the matching `}`. Lambdas and local classes
count towards the function that holds them. Every file under csrc/ is scanned, headers,
.inc and CUDA sources included; nothing is skipped except what ALLOWED lists.
"""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
EXTENSIONS = (".cpp", ".h", ".inc", ".cu", ".cuh")
MAX_LINES = 100
MAX_INIT_LINES = 60  # csrc/python init_*: bindings stay thin, one concept per init

# (relative path, function name) -> why it may be longer. Keep short, and say why.
ALLOWED = {}

_CONTAINER = re.compile(r"\b(namespace|class|struct|union|enum)\b[^()]*$|\bextern\s*\"C\"\s*$")
_CONTROL = re.compile(r"\b(if|for|while|switch|catch|do|else|try)\s*$")


def _blank(text):
    """text with comments, literals and preprocessor lines replaced by spaces (newlines kept)."""
    out, i, n = [], 0, len(text)
    keep_lines = lambda s: re.sub(r"[^\n]", " ", s)  # noqa: E731
    while i < n:
        c = text[i]
        if text.startswith("//", i) or (c == "#" and text[text.rfind("\n", 0, i) + 1:i].strip() == ""):
            j = i
            while True:  # to the end of the line, following backslash continuations
                j = text.find("\n", j)
                if j < 0:
                    j = n
                    break
                if text[j - 1] != "\\":
                    break
                j += 1
            out.append(keep_lines(text[i:j]))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(keep_lines(text[i:j]))
            i = j
        elif c == "R" and text.startswith('R"', i) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            delim = text[i + 2:text.index("(", i + 2)]
            j = text.index(")" + delim + '"', i) + len(delim) + 2
            out.append('""' + keep_lines(text[i + 2:j - 1]))
            i = j
        elif c in "\"'" and not (c == "'" and i and text[i - 1].isalnum()):  # 1'000 digit separator
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + keep_lines(text[i + 1:j]) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _strip_template(h):
    """h without a leading `template <...>` (its default arguments hold `=`)."""
    while h.startswith("template"):
        depth, i = 0, h.find("<")
        for i in range(i, len(h)):
            depth += {"<": 1, ">": -1}.get(h[i], 0)
            if depth == 0:
                break
        h = h[i + 1:].strip()
    return h


def _is_function(header):
    """Does the text before a `{` at namespace/class level open a function body?"""
    h = _strip_template(" ".join(header.split()))
    if not h or "=" in h.split("(")[0] or _CONTAINER.search(h) or _CONTROL.search(h):
        return False
    # strip a constructor's member initializer list `) : a_(x), b_{y}` back to its `)`
    m = re.search(r"\)\s*(const|noexcept|override|final|mutable|volatile|&|\s)*"
                  r"(->[^{]*)?(:\s*[\w:<>]+\s*[({].*)?$", h)
    return m is not None


def _name(header):
    header = re.sub(r"__launch_bounds__\s*\([^)]*\)", "", _strip_template(" ".join(header.split())))
    before = header[:header.find("(")] if "(" in header else header
    words = re.findall(r"[~\w:]+", before)
    return words[-1] if words else "?"


def functions(path):
    """(name, first line, number of lines) of every function body in a file."""
    text = _blank(open(path, encoding="utf-8").read())
    found, depth, start, header_at = [], 0, None, 0
    body_depth = None
    for i, c in enumerate(text):
        if c == "{":
            if body_depth is None:
                header = text[header_at:i]
                if _is_function(header):
                    body_depth, start = depth, i
                    found.append([_name(header), text.count("\n", 0, i) + 1, None])
                elif not _CONTAINER.search(" ".join(header.split())) and "extern" not in header:
                    body_depth, start = depth, i  # initializer / other block: skip as a unit
                    found.append(None)
            depth += 1
            header_at = i + 1
        elif c == "}":
            depth -= 1
            if body_depth is not None and depth == body_depth:
                if found[-1] is not None:
                    found[-1][2] = text.count("\n", start, i) + 1
                body_depth = None
            header_at = i + 1
        elif c == ";" and body_depth is None:
            header_at = i + 1
    return [tuple(f) for f in found if f is not None]


def _sources():
    for d, _, files in sorted(os.walk(CSRC)):
        for f in sorted(files):
            if f.endswith(EXTENSIONS):
                yield os.path.join(d, f)


def test_scanner_finds_known_shapes(tmp_path):
    # the scan itself must work: it finds functions, lambdas stay inside, namespaces/classes
    # are entered, initializers are skipped, and a long body is measured as long.
    src = ('template <int N = 2> int h() { return N; }\n'
           'namespace a { struct S { int f() const { return 1; } S() : x_(0), y_{1} {} int x_, y_; };\n'
           'int t[] = {1, 2};\n'
           'void g(int x) {\n  auto l = [](int y) { return y; };\n  if (x) {\n  }\n  const char* s = "}{";\n'
           + "  x++;\n" * 120 + '}\n}  // namespace a\n')
    tmp = str(tmp_path / "probe.cpp")
    with open(tmp, "w") as f:
        f.write(src)
    got = {name: lines for name, _, lines in functions(tmp)}
    assert set(got) == {"h", "f", "S", "g"}, got
    assert got["g"] > 120 and got["f"] == 1


def _all_functions():
    for path in _sources():
        rel = os.path.relpath(path, ROOT)
        for name, line, lines in functions(path):
            yield rel, name, line, lines


def test_csrc_has_functions():
    names = {(rel, name) for rel, name, _, _ in _all_functions()}
    assert ("csrc/core/plan/plan.cpp", "make_plan") in names
    assert ("csrc/python/module.cpp", "?") not in names
    assert sum(1 for _ in names) > 200


def test_no_long_cpp_function():
    long = [f"{rel}:{line} {name} ({lines} lines)" for rel, name, line, lines in _all_functions()
            if lines > MAX_LINES and (rel, name) not in ALLOWED]
    assert not long, "C++ functions over %d lines:\n  " % MAX_LINES + "\n  ".join(long)


def test_bindings_are_thin():
    long = [f"{rel}:{line} {name} ({lines} lines)" for rel, name, line, lines in _all_functions()
            if rel.startswith("csrc/python/") and name.startswith("init_") and lines > MAX_INIT_LINES]
    assert not long, "binding inits over %d lines:\n  " % MAX_INIT_LINES + "\n  ".join(long)


def test_allow_list_is_current():
    # an allowed function that got short (or went away) must leave the list
    lengths = {}
    for rel, name, _, lines in _all_functions():
        lengths[(rel, name)] = max(lines, lengths.get((rel, name), 0))
    stale = [key for key in ALLOWED if lengths.get(key, 0) <= MAX_LINES]
    assert not stale, f"no longer long, drop them from ALLOWED: {stale}"
