"""The CUDA C++ kernels' names in the static report (static_cuda.py): ptxas's log (ptxas_log.py) names
them mangled; c++filt demangles them, and the table shows name / template instance / parameters apart.
"""
import shutil
import subprocess


def demangle(names):
    """{mangled: demangled} through c++filt (binutils; nvcc's host compiler needs it anyway); names it
    cannot demangle, or all of them without c++filt, map to themselves."""
    names = sorted(set(names))
    cxxfilt = shutil.which("c++filt")
    if not names or cxxfilt is None:
        return {n: n for n in names}
    try:
        done = subprocess.run([cxxfilt], input="\n".join(names) + "\n", capture_output=True, text=True,
                              timeout=60, check=False)
        out = done.stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        out = []
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def split_demangled(text):
    """"void ns::conv<float, 3>(float const*, int)" -> ("ns::conv", "<float, 3>", "(float const*, int)")."""
    anon = "(anonymous namespace)"
    body = text.replace(anon, "\0")  # its parentheses are not the parameter list's
    if body.startswith("void "):  # c++filt prints the return type of template instances (kernels: void)
        body = body[len("void "):]
    depth, cut = 0, len(body)
    for i, ch in enumerate(body):
        depth += (ch == "<") - (ch == ">")
        if ch == "(" and depth == 0:
            cut = i
            break
    head, params = body[:cut], body[cut:]
    lt = head.find("<")
    name, instance = (head[:lt], head[lt:]) if lt >= 0 else (head, "")
    return tuple(part.replace("\0", anon) for part in (name, instance, params))
