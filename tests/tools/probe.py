"""A tool that misbehaves on request, for the engine's tests.

probe echo ARGS...            print the arguments, one per line
probe env NAME...             print NAME=value for each variable (value or <unset>)
probe fail CODE               print a line and exit with CODE
probe sleep SECONDS           print "sleeping", sleep, print "woke"
probe tree PIDFILE            start a child and a grandchild that sleep; write all pids; sleep
probe orphan PIDFILE          start a child that outlives us holding stdout open; exit 0
probe lines N                 print N numbered lines as fast as possible
probe binary                  write bytes that are not UTF-8
probe bigline N               write one line of N characters
probe close-stdout            close stdout, then keep running for a moment and exit 0
probe signal                  kill ourselves with SIGKILL
probe output KEY=VALUE...     write KEY=VALUE lines to $TOOLRUN_OUTPUT
probe output-as KIND          make $TOOLRUN_OUTPUT a dir, fifo, link (to a file) or big (2 MiB)
probe flaky COUNTER N         fail until called N times (counting in the file COUNTER)
probe stderr TEXT             print TEXT to stderr
probe cwd                     print the working directory
probe write NAME TEXT         write TEXT to the file NAME (relative to the working directory)
probe read NAME               print the file NAME
probe drip N SECONDS          print N numbered lines, SECONDS apart
probe daemonize PIDFILE [S]   start a daemon (double fork, setsid, stdio closed) that sleeps;
                              write its pid; then sleep S seconds (default 0) and exit 0
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    mode, args = argv[0], argv[1:]
    if mode == "echo":
        for arg in args:
            print(arg, flush=True)
    elif mode == "env":
        for name in args:
            print(f"{name}={os.environ.get(name, '<unset>')}", flush=True)
    elif mode == "fail":
        print("failing", flush=True)
        return int(args[0])
    elif mode == "sleep":
        print("sleeping", flush=True)
        time.sleep(float(args[0]))
        print("woke", flush=True)
    elif mode == "stubborn":  # ignores the polite signal: only a forceful one ends it
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(args[0], "w") as file:
            file.write(f"{os.getpid()}\n")
        print("not stopping", flush=True)
        time.sleep(600)
    elif mode in ("tree", "leave"):  # leave: the leader exits, its child and grandchild stay
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import subprocess, sys, time;"
                "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
                "print(p.pid, flush=True); time.sleep(600)",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        grandchild = child.stdout.readline().strip()
        with open(args[0], "w") as file:
            file.write(f"{os.getpid()} {child.pid} {grandchild}\n")
        print("tree started", flush=True)
        if mode == "leave":
            return 0
        time.sleep(600)
    elif mode == "orphan":
        orphan = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import time; print('orphan alive', flush=True); time.sleep(600)",
            ]
        )
        with open(args[0], "w") as file:
            file.write(f"{orphan.pid}\n")
        print("parent done", flush=True)
        return 0
    elif mode == "lines":
        out = sys.stdout
        count = int(args[0])
        chunk = 10000
        for start in range(0, count, chunk):
            out.write(
                "".join(
                    f"line {i} of the probe's output\n"
                    for i in range(start, min(start + chunk, count))
                )
            )
        out.flush()
    elif mode == "binary":
        sys.stdout.buffer.write(b"ok \xff\xfe\x00 bytes\nsecond\n")
        sys.stdout.buffer.flush()
    elif mode == "bigline":
        sys.stdout.write("x" * int(args[0]) + "\n")
        sys.stdout.flush()
    elif mode == "close-stdout":
        print("closing", flush=True)
        sys.stdout.flush()
        os.close(1)
        time.sleep(0.5)
        os._exit(0)
    elif mode == "signal":
        print("about to die", flush=True)
        os.kill(os.getpid(), 9)
    elif mode == "output":
        with open(os.environ["TOOLRUN_OUTPUT"], "a", encoding="utf-8") as file:
            for pair in args:
                file.write(pair + "\n")
    elif mode == "output-as":
        path = os.environ["TOOLRUN_OUTPUT"]
        if args[0] == "dir":
            os.mkdir(path)
        elif args[0] == "fifo":
            os.mkfifo(path)
        elif args[0] == "link":
            Path("target.env").write_text("SECRET=1\n")
            os.symlink(os.path.abspath("target.env"), path)
        else:
            with open(path, "w") as file:
                file.writelines(f"K{i}={'x' * 100}\n" for i in range(20_000))
    elif mode == "flaky":
        path, needed = args[0], int(args[1])
        calls = int(Path(path).read_text()) + 1 if os.path.exists(path) else 1
        with open(path, "w") as file:
            file.write(str(calls))
        print(f"call {calls}", flush=True)
        return 0 if calls >= needed else 1
    elif mode == "stderr":
        print(args[0], file=sys.stderr, flush=True)
    elif mode == "cwd":
        print(os.getcwd(), flush=True)
    elif mode == "write":
        Path(args[0]).parent.mkdir(parents=True, exist_ok=True)
        with open(args[0], "w", encoding="utf-8") as file:
            file.write(args[1])
    elif mode == "drip":
        for index in range(int(args[0])):
            print(f"drip {index}", flush=True)
            time.sleep(float(args[1]))
    elif mode == "daemonize":
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                with open(args[0] + ".tmp", "w") as file:
                    file.write(f"{os.getpid()}\n")
                os.replace(args[0] + ".tmp", args[0])
                time.sleep(600)
            os._exit(0)
        while not os.path.exists(args[0]):
            time.sleep(0.01)
        print("daemon started", flush=True)
        time.sleep(float(args[1]) if len(args) > 1 else 0)
    elif mode == "read":
        with open(args[0], encoding="utf-8") as file:
            print(file.read(), flush=True)
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
