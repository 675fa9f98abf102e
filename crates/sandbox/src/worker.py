# agentopt sandbox fork server. One warm Python process (the zygote) imports the
# preloads once, then forks a session per request from the Rust side. Each session is
# a new init (PID 1 of fresh PID, mount, network, IPC and UTS namespaces, with its own
# size-capped tmpfs for /work and /tmp) and, once the host has placed that init in the
# session's cgroups, a worker that drops every privilege and runs cells.
# Zygote protocol: JSON messages with attached descriptors on the SOCK_SEQPACKET fd 3.
# Session protocol: JSON lines, requests on fd 3, responses on fd 4 (never stdout).
# From the first request on, fds 1 and 2 point at the session's capture files,
# emptied when each request starts.
import ast, builtins, contextlib, ctypes, fcntl, functools, gc, json, linecache, os, resource, signal, socket, sys, time, traceback

CONFIG = json.loads(sys.argv[2])
CONTROL_FD, SECCOMP_FD = 3, 5
REQUEST_FD, RESPONSE_FD = 3, 4
SHORTEN_PREFIXES = sorted({p for p in sys.path if p} | {sys.prefix, sys.base_prefix}, key=len, reverse=True)
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x4000000, 0x8000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE = 38, 22, 36, 4


def checked(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, "%s: %s" % (what, os.strerror(errno)))


# ---------------------------------------------------------------- the worker's limits

def apply_rlimits():
    applied = []
    for name, value in CONFIG["rlimits"].items():
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
            applied.append(name)
        except (ValueError, OSError):
            pass
    # Output beyond RLIMIT_FSIZE must fail the write, not kill the worker.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return applied


# Landlock through raw syscalls: it must be applied after the session's mounts (a
# Landlock domain forbids mounting).
LANDLOCK_CREATE_RULESET, LANDLOCK_ADD_RULE, LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_WRITE_FILE, LANDLOCK_READ_FILE, LANDLOCK_TRUNCATE = 1 << 1, 1 << 2, 1 << 14


class RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def apply_landlock(read_write_dirs, write_only_dir):
    """Read-only everywhere; read-write in `read_write_dirs`; in `write_only_dir` only
    reading, writing and truncating the files already there (no new files)."""
    abi = LIBC.syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return None
    fs_bits = {1: 13, 2: 14, 3: 15, 4: 15}.get(abi, 16)
    handled_fs = (1 << fs_bits) - 1
    read_only = (1 << 0) | (1 << 2) | (1 << 3)  # EXECUTE, READ_FILE, READ_DIR
    attr = RulesetAttr(handled_fs, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0)
    size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = LIBC.syscall(LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return None
    capture = LANDLOCK_READ_FILE | LANDLOCK_WRITE_FILE | LANDLOCK_TRUNCATE | read_only
    rules = [("/", read_only), ("/dev/null", LANDLOCK_WRITE_FILE | LANDLOCK_READ_FILE), (write_only_dir, capture)]
    rules += [(path, handled_fs) for path in read_write_dirs]
    try:
        for path, allowed in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = PathBeneath(allowed & handled_fs, fd)
                if LIBC.syscall(LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), 0) != 0:
                    return None
            finally:
                os.close(fd)
        LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        return abi if LIBC.syscall(LANDLOCK_RESTRICT_SELF, ruleset, 0) == 0 else None
    finally:
        os.close(ruleset)


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def apply_seccomp(program):
    if not program:
        return False
    LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    fprog = SockFprog(len(program) // 8, program)
    return LIBC.prctl(PR_SET_SECCOMP, 2, ctypes.byref(fprog), 0, 0) == 0


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


def drop_capabilities():
    """Empties every capability set (capset v3) and the ability to regain any."""
    header = CapHeader(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)()
    checked(LIBC.capset(ctypes.byref(header), data), "capset")
    LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


# ---------------------------------------------------------------- cells

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
    """The cell's code, and apart from it its trailing expression statement (whose
    value is the cell's value), if any."""
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    split = compile_last_line_apart(code, filename)
    if split is not None:
        return split
    tree = ast.parse(code, filename, "exec")
    tail = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        tail = compile(ast.Expression(tree.body.pop().value), filename, "eval")
    return compile(tree, filename, "exec"), tail


def compile_last_line_apart(code, filename):
    """Most cells end with a one-line expression (a print, a value). Compiled
    straight from the source, the lines before it and that line skip the AST round
    trip, about a third of compiling. Sound only when both parts compile on their
    own and the last line starts a statement (column 0): then the lines before it
    end with a whole statement. Anything else (None) takes the AST."""
    head, newline, last = code.rstrip().rpartition("\n")
    if not last or last[0] in " \t#" or "\r" in code or last.split(None, 1)[0] in STATEMENT_KEYWORDS:
        return None
    try:
        tail = compile(newline * (head.count("\n") + 1) + last, filename, "eval")
        return compile(head, filename, "exec"), tail
    except SyntaxError:
        return None


# Words that start a statement, never an expression, on a cell's last line.
STATEMENT_KEYWORDS = frozenset(
    "assert break class continue def del for from global if import nonlocal pass raise return try while with".split()
)


# The capture files' descriptors, by path, kept open between requests.
CAPTURE_FILES = {}


def capture_file(path):
    """The capture file at `path`, emptied. Kept open between requests (no path walk,
    which Landlock also checks, per request); opened again where a cell closed or
    replaced its descriptor."""
    fd = CAPTURE_FILES.get(path)
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
    except (OSError, TypeError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        CAPTURE_FILES[path] = fd
    return fd


class Captured:
    """Points fds 1 and 2 at the session's capture files, emptied, for one request.
    They stay there after it (the next request empties them): a cell that closed or
    replaced a saved copy of the previous descriptors cannot break the worker."""

    def __init__(self, io_dir):
        self.paths = [(1, os.path.join(io_dir, "stdout")), (2, os.path.join(io_dir, "stderr"))]

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, path in self.paths:
            os.dup2(capture_file(path), fd)
        return self

    def __exit__(self, *exc):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        return False


def reap_leftovers(own_pid_namespace):
    # Only inside the session's own PID namespace: kill(-1) there reaches nothing
    # outside it (init, PID 1, is exempt). Unsandboxed, the host kills leftovers and
    # this only reaps them. The host checks the result either way.
    if own_pid_namespace:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return  # no other process in the namespace, not even a zombie to reap
        except OSError:
            pass
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            if not own_pid_namespace:
                return
            time.sleep(0.001)


def set_cpu_budget():
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    budget = int(usage.ru_utime + usage.ru_stime) + 1 + CONFIG["cpu_seconds_per_cell"]
    if hard != resource.RLIM_INFINITY:
        budget = min(budget, hard)
    if soft == budget:
        return
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (budget, hard))
    except (ValueError, OSError):
        pass


def learned(name, code):
    """A learned function: its code run in a namespace of its own (never the session's
    globals), so the function sees exactly its own definitions."""
    namespace = {"__name__": "__learned__", "__builtins__": builtins}
    body, _ = compile_cell(code, "<function %s>" % name)
    exec(body, namespace)
    function = namespace.get(name)
    if not callable(function):
        raise NameError("the function's code does not define a callable named %r" % name)
    return function


def counted(name, function, calls):
    """`function` for cell code: each call is counted in `calls[name]` as
    [returned normally, raised], so calls from code are counted like tool calls (and a
    loop of a million calls costs two numbers, not a million entries)."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        counts = calls.setdefault(name, [0, 0])
        try:
            result = function(*args, **kwargs)
        except BaseException:
            counts[1] += 1
            raise
        counts[0] += 1
        return result
    return call


def define(functions, session_globals, calls, bound):
    """Binds each learned function, counted, under its name in the session's globals
    (and in `bound`, to see later whether cell code rebound the name); a function whose
    code fails is left out and its traceback reported."""
    failures = []
    for function in functions:
        try:
            wrapper = counted(function["name"], learned(function["name"], function["code"]), calls)
            session_globals[function["name"]] = bound[function["name"]] = wrapper
        except BaseException as exc:
            failures.append(format_exception(exc))
    if failures:
        raise RuntimeError("functions left undefined:\n" + "\n".join(failures))


def execute(code, namespace):
    """Runs a cell in `namespace`; the `repr` of its trailing expression, if any."""
    body, tail = compile_cell(code, "<cell>")
    exec(body, namespace)
    if tail is None:
        return None
    result = eval(tail, namespace)
    return None if result is None else repr(result)


def still_bound(session_globals, bound):
    """The learned functions whose names the session's globals still bind to them."""
    return {name for name, wrapper in bound.items() if session_globals.get(name) is wrapper}


def run(request, session_globals, io_dir, calls, bound):
    value = None
    error = None
    with Captured(io_dir):
        try:
            if request["op"] == "exec":
                value = execute(request["code"], session_globals)
            elif request["op"] == "define":
                define(request["functions"], session_globals, calls, bound)
            else:
                function = learned(request["name"], request["code"])
                # As AG2 shows a function's result: printed (str), not repr.
                value = str(function(**request["args"]))
        except BaseException as exc:  # SystemExit and KeyboardInterrupt are cell errors too
            error = format_exception(exc)
    return value, error


def answer(line, session_globals, io_dir, calls, bound, own_pid_namespace):
    """The response line to one request line: with the calls the request's code made
    of learned functions, and the learned functions it shadowed (rebound their names
    with a def, an import, an assignment or a del, so later calls reach its own)."""
    request = json.loads(line)
    set_cpu_budget()
    calls.clear()
    before = still_bound(session_globals, bound)
    value, error = run(request, session_globals, io_dir, calls, bound)
    shadowed = sorted(before - still_bound(session_globals, bound))
    reap_leftovers(own_pid_namespace)
    response = {"id": request["id"], "value": value, "error": error, "calls": calls, "shadowed": shadowed}
    return (json.dumps(response) + "\n").encode()


def yield_the_cpu():
    """Lowest priority for what is left of this process: its exit (the teardown of an
    address space, milliseconds) then takes CPU no conversation wants."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 19)
    except OSError:
        pass


def serve(config, own_pid_namespace, read=os.read, write=os.write):
    """The cell loop. Requests are read straight from fd 3 with a function bound when
    the worker started, so the host can recognise this loop's own blocking read."""
    session_globals = {"__name__": "__main__", "__builtins__": builtins}
    calls = {}
    bound = {}
    pending = b""
    while True:
        while b"\n" not in pending:
            chunk = read(REQUEST_FD, 1 << 16)
            if not chunk:
                yield_the_cpu()
                return
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        write(RESPONSE_FD, answer(line, session_globals, config["io_dir"], calls, bound, own_pid_namespace))


# ---------------------------------------------------------------- sessions

def mount_points():
    with open("/proc/self/mountinfo") as mountinfo:
        # Field 5 is the mount point, with spaces and the like octal-escaped.
        return [line.split()[4].encode().decode("unicode_escape") for line in mountinfo]


def mount_session(session, sandboxed):
    """In the session's own mount namespace: its host io dir at /io, a private tmpfs of
    `workspace_limit` bytes behind /work and /tmp, the other sessions' dirs hidden, and a
    /proc of its own PID namespace. Unsandboxed, the work dir is a host dir."""
    sessions, io_dir = CONFIG["sessions_dir"], CONFIG["io_dir"]
    if not sandboxed:
        work = os.path.join(sessions, session["name"], "work")
        os.makedirs(work, exist_ok=True)
        return work, os.path.join(sessions, session["name"], "io")
    checked(LIBC.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "making / private")
    host_io = os.path.join(sessions, session["name"], "io").encode()
    checked(LIBC.mount(host_io, io_dir.encode(), None, MS_BIND, None), "binding /io")
    # The workspace tmpfs goes over the host's session dirs, hiding them (in a user
    # namespace that mount is locked and cannot be unmounted), and stays there
    # read-only once its two dirs are bound at /work and /tmp.
    options = ("size=%d,mode=0755" % CONFIG["workspace_limit"]).encode()
    checked(LIBC.mount(b"tmpfs", sessions.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options), "mounting the workspace")
    # The venv or interpreter may live under /tmp: keep those mounts visible above it
    # (a bind keeps the flags, read-only included, of the mount it copies).
    under_tmp = [point for point in mount_points() if point.startswith("/tmp/")]
    kept = [os.open(point, os.O_PATH | os.O_CLOEXEC) for point in under_tmp]
    for name, target in (("work", CONFIG["work_dir"]), ("tmp", "/tmp")):
        staged = os.path.join(sessions, name)
        os.mkdir(staged)
        os.chmod(staged, 0o1777 if name == "tmp" else 0o777)
        checked(LIBC.mount(staged.encode(), target.encode(), None, MS_BIND, None), "binding " + target)
    for point, fd in zip(under_tmp, kept):
        os.makedirs(point, exist_ok=True)
        checked(LIBC.mount(b"/proc/self/fd/%d" % fd, point.encode(), None, MS_BIND | MS_REC, None), "keeping " + point)
        os.close(fd)
    read_only = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
    checked(LIBC.mount(None, sessions.encode(), None, read_only, None), "making the staging dir read-only")
    checked(LIBC.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mounting /proc")
    return CONFIG["work_dir"], io_dir


def start_worker(session, work, io_dir, seccomp_program, sandboxed):
    """The session's worker: capture files, limits, a fresh uid, no capabilities,
    Landlock and seccomp; then it reports ready and serves cells until its fd 3 closes."""
    applied = apply_rlimits()
    uid = session.get("uid")
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        # A uid change makes the process undumpable, which would hide its own
        # /proc/self/fd from it; nothing else of the session can ptrace (seccomp).
        LIBC.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    if sandboxed:
        drop_capabilities()
    # Created now, as the session's uid, since Landlock will allow no new file in /io.
    for name in ("stdout", "stderr"):
        os.close(os.open(os.path.join(io_dir, name), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    os.chdir(work)
    writable = [work] + (["/tmp"] if sandboxed else [])
    landlock = apply_landlock(writable, io_dir)
    seccomp = apply_seccomp(seccomp_program)
    os.environ["HOME"] = work
    sys.argv = [""]
    config = dict(CONFIG, io_dir=io_dir)
    # The warm-up cell now, as a request (its answer dropped), while the session
    # waits in the pool: the first real request then does not pay for copying the
    # pages this path writes (fork is copy-on-write).
    warm_up = json.dumps({"id": 0, "op": "exec", "code": CONFIG["warm_up"]})
    answer(warm_up, warm_up_namespace(), io_dir, {}, {}, sandboxed)
    os.write(RESPONSE_FD, (json.dumps({"ready": True, "landlock_abi": landlock, "rlimits": applied, "seccomp": seccomp}) + "\n").encode())
    serve(config, sandboxed)


def describe(status):
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "signal"
        if number == signal.SIGXCPU:
            name += ", CPU limit"
        return "the worker was killed by signal %d (%s)" % (number, name)
    return "the worker exited with status %d" % os.waitstatus_to_exitcode(status)


def session_init(session, seccomp_program, sandboxed):
    """PID 1 of the session: mounts, waits for the host's go (sent once the host has put
    it in the session's cgroups), forks the worker, reaps orphans, and when the worker
    dies reports how on the response fd and exits, which ends every session process."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    if not sandboxed:
        os.setsid()
    work, io_dir = mount_session(session, sandboxed)
    if os.read(REQUEST_FD, 3) != b"go\n":
        os._exit(1)
    worker = os.fork()
    if worker == 0:
        LIBC.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            start_worker(session, work, io_dir, seccomp_program, sandboxed)
        except BaseException:
            traceback.print_exc()
            os._exit(70)
        os._exit(0)
    os.close(REQUEST_FD)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == worker:
            try:
                os.write(RESPONSE_FD, (json.dumps({"died": describe(status)}) + "\n").encode())
            finally:
                yield_the_cpu()
                os._exit(0)


def fork_session(session, fds, seccomp_program, sandboxed):
    """Forks the session's init into fresh namespaces; returns its pid (in our namespace)."""
    report_read, report_write = os.pipe()
    middle = os.fork()
    if middle == 0:
        try:
            # Move everything above the fixed numbers first, so no dup2 lands on a
            # descriptor still needed.
            request, response, report = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (*fds, report_write))
            os.dup2(request, REQUEST_FD)
            os.dup2(response, RESPONSE_FD)
            os.closerange(RESPONSE_FD + 1, report)
            os.closerange(report + 1, 1 << 16)
            report_write = report
            if sandboxed:
                flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
                checked(LIBC.unshare(flags), "unshare")
            init = os.fork()
            if init == 0:
                os.close(report_write)
                try:
                    session_init(session, seccomp_program, sandboxed)
                except BaseException:
                    traceback.print_exc()
                os._exit(71)
            os.write(report_write, b"%d\n" % init)
        except BaseException:
            traceback.print_exc()
        os._exit(0)
    os.close(report_write)
    for fd in fds:
        os.close(fd)
    with os.fdopen(report_read, "rb") as report:
        text = report.read().strip()
    return int(text) if text else None


def warm_up_namespace():
    return {"__name__": "__main__", "__builtins__": builtins}


def zygote():
    # Sessions (forked from here) are batch work: they never preempt the
    # orchestrating process on wake-up. A killed Python's exit (milliseconds of
    # address-space teardown) otherwise lands on the next conversation's turn.
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError:
        pass
    for module in CONFIG["preload"]:
        try:
            __import__(module)
        except Exception:
            pass
    # The warm-up once here too, so what it initialises is shared by every session.
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            execute(CONFIG["warm_up"], warm_up_namespace())
        except BaseException:
            pass
    sandboxed = CONFIG["own_namespaces"]
    seccomp_program = b""
    if sandboxed:
        with os.fdopen(SECCOMP_FD, "rb") as program:
            seccomp_program = program.read()
    # Sessions are reaped by the kernel; the zygote never waits for them.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    control = socket.socket(fileno=CONTROL_FD)
    control.set_inheritable(False)
    gc.collect()
    gc.freeze()  # Keep the imported modules' pages shared with every session.
    control.send(json.dumps({"ready": True, "python": sys.version.split()[0]}).encode())
    while True:
        message, fds, _, _ = socket.recv_fds(control, 1 << 16, 2)
        if not message:
            return
        session = json.loads(message)
        try:
            pid = fork_session(session, fds, seccomp_program, sandboxed)
            pidfd = os.pidfd_open(pid) if pid else None
        except OSError as error:
            control.send(json.dumps({"name": session["name"], "error": str(error)}).encode())
            continue
        if pidfd is None:
            control.send(json.dumps({"name": session["name"], "error": "the session did not start"}).encode())
            continue
        socket.send_fds(control, [json.dumps({"name": session["name"], "pid": pid}).encode()], [pidfd])
        os.close(pidfd)


zygote()
