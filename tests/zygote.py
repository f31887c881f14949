"""Starts the tests' `collab serve` processes by forking one that has already imported
collab, instead of starting Python afresh for each: most of a server's start (0.4 of
its 0.46 CPU-seconds) is imports, and the suite starts some 370 servers.

Reads one JSON request a line on stdin, ``{"program", "argv", "env", "cwd", "log"}``
(``program``: "collab", or "uvicorn" for a host application embedding collab), and
answers the new server's pid. The server is forked twice, so that it is re-parented to the
test process (a child subreaper, see ``tests/support.py``), which waits for it as for
any child. Each server then runs ``collab.cli.main(argv)`` exactly as the console
script does (or uvicorn's command line), with its own environment, directory and log
file.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

# What `collab serve` imports, done once here rather than in every server.
import fastapi
import uvicorn.config
import uvicorn.lifespan.on
import uvicorn.loops.uvloop
from uvicorn.main import main as uvicorn_command

import collab.cli
import collab.web.app
import collab.web.httpprotocol
import collab.web.server
import collab.web.wsprotocol

PRELOADED = (fastapi, uvicorn.config, uvicorn.lifespan.on, uvicorn.loops.uvloop)


def serve(request: dict[str, object]) -> None:
    """In the forked server: become what `collab <argv>` would be, then exit."""
    code = 1
    try:
        log = os.open(str(request["log"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        quiet = os.open(os.devnull, os.O_RDONLY)
        os.dup2(quiet, 0)
        os.close(quiet)
        os.chdir(str(request["cwd"]))
        env = request["env"]
        assert isinstance(env, dict)
        os.environ.clear()
        os.environ.update(env)
        argv = request["argv"]
        assert isinstance(argv, list)
        if request.get("program") == "uvicorn":
            sys.path.insert(0, str(request["cwd"]))  # as `python -m uvicorn` finds the app
            uvicorn_command.main(args=argv, prog_name="uvicorn", standalone_mode=False)
            code = 0
        else:
            code = collab.cli.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read)
            server = os.fork()
            if server == 0:
                os.close(write)
                serve(request)
            os.write(write, str(server).encode())
            os._exit(0)
        os.close(write)
        pid = int(os.read(read, 64))
        os.close(read)
        os.waitpid(child, 0)  # the server is an orphan now, adopted by the subreaper
        print(pid, flush=True)


if __name__ == "__main__":
    main()
