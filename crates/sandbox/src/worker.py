# agentopt sandbox worker: one warm Python process that runs cells for the Rust side.
# Protocol: JSON lines, requests on fd 3, responses on fd 4 (never stdout). During a
# cell, fds 1 and 2 point at capture files that the Rust side reads itself.
import ast, builtins, ctypes, json, linecache, os, resource, signal, sys, time, traceback

CONFIG = json.loads(sys.argv[2])
REQUESTS = os.fdopen(3, "r", encoding="utf-8")
RESPONSES = os.fdopen(4, "w", encoding="utf-8")
os.set_inheritable(3, False)
os.set_inheritable(4, False)
SHORTEN_PREFIXES = sorted({p for p in sys.path if p} | {sys.prefix, sys.base_prefix}, key=len, reverse=True)


def send(message):
    RESPONSES.write(json.dumps(message) + "\n")
    RESPONSES.flush()


def apply_rlimits():
    applied = []
    limits = CONFIG["rlimits"]
    for name, value in limits.items():
        which = getattr(resource, name)
        try:
            resource.setrlimit(which, (value, value))
            applied.append(name)
        except (ValueError, OSError):
            pass
    # Output beyond RLIMIT_FSIZE must fail the write, not kill the worker.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return applied


# Landlock through raw syscalls: it must be applied inside the sandbox, after
# bubblewrap has built the mount namespace (a Landlock domain forbids mounting).
LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446


class RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def apply_landlock(read_write_dirs):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return None
    fs_bits = {1: 13, 2: 14, 3: 15, 4: 15}.get(abi, 16)
    handled_fs = (1 << fs_bits) - 1
    read_only = (1 << 0) | (1 << 2) | (1 << 3)  # EXECUTE, READ_FILE, READ_DIR
    attr = RulesetAttr(handled_fs, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)
    size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = libc.syscall(LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return None
    # Files only accept file rights: drop directory-only bits for /dev/null-like paths.
    rules = [("/", read_only), ("/dev/null", (1 << 1) | (1 << 2))]
    rules += [(path, handled_fs) for path in read_write_dirs]
    for path, allowed in rules:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            rule = PathBeneath(allowed & handled_fs, fd)
            if libc.syscall(LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0) != 0:
                return None
        finally:
            os.close(fd)
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    ok = libc.syscall(LANDLOCK_RESTRICT_SELF, ruleset, 0) == 0
    os.close(ruleset)
    return abi if ok else None


def short_path(filename):
    for prefix in SHORTEN_PREFIXES:
        if filename.startswith(prefix + os.sep):
            return filename[len(prefix) + 1:]
    return filename


def format_exception(exc):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != "<agentopt-worker>"]
    for frame in frames:
        frame.filename = short_path(frame.filename)
    text = "".join(traceback.format_list(frames))
    head = "Traceback (most recent call last):\n" if frames else ""
    return head + text + "".join(traceback.format_exception_only(type(exc), exc))


def compile_cell(code, filename):
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    tree = ast.parse(code, filename, "exec")
    tail = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        tail = compile(ast.Expression(tree.body.pop().value), filename, "eval")
    return compile(tree, filename, "exec"), tail


class Captured:
    """Points fds 1 and 2 at fresh capture files for the duration of one request."""

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        for fd, name in ((1, "stdout"), (2, "stderr")):
            target = os.open(os.path.join(CONFIG["io_dir"], name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            os.dup2(target, fd)
            os.close(target)
        return self

    def __exit__(self, *exc):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)
        return False


def reap_leftovers():
    # Only inside our own PID namespace: kill(-1) there reaches nothing outside it.
    if not CONFIG["own_pid_namespace"]:
        return
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.001)


def set_cpu_budget():
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    budget = used + CONFIG["cpu_seconds_per_cell"]
    if hard != resource.RLIM_INFINITY:
        budget = min(budget, hard)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (budget, hard))
    except (ValueError, OSError):
        pass


def run(request, session_globals):
    value = None
    error = None
    with Captured():
        try:
            if request["op"] == "exec":
                body, tail = compile_cell(request["code"], "<cell>")
                exec(body, session_globals)
                if tail is not None:
                    result = eval(tail, session_globals)
                    value = None if result is None else repr(result)
            else:
                name = request["name"]
                namespace = {"__name__": "__learned__", "__builtins__": builtins}
                body, _ = compile_cell(request["code"], "<function %s>" % name)
                exec(body, namespace)
                function = namespace.get(name)
                if not callable(function):
                    raise NameError("the function's code does not define a callable named %r" % name)
                value = repr(function(**request["args"]))
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are cell errors too
            error = format_exception(exc)
    return value, error


def main():
    applied = apply_rlimits()
    os.makedirs(CONFIG["work_dir"], exist_ok=True)
    os.chdir(CONFIG["work_dir"])
    preloaded = []
    for module in CONFIG["preload"]:
        try:
            __import__(module)
            preloaded.append(module)
        except Exception:
            pass
    # /tmp is the sandbox's private tmpfs only inside our own namespaces.
    writable = [CONFIG["work_dir"], CONFIG["io_dir"]] + (["/tmp"] if CONFIG["own_pid_namespace"] else [])
    landlock = apply_landlock(writable)
    sys.argv = [""]
    session_globals = {"__name__": "__main__", "__builtins__": builtins}
    send({"ready": True, "landlock_abi": landlock, "rlimits": applied, "python": sys.version.split()[0], "preloaded": preloaded})
    for line in REQUESTS:
        request = json.loads(line)
        set_cpu_budget()
        value, error = run(request, session_globals)
        reap_leftovers()
        send({"id": request["id"], "value": value, "error": error})


main()
