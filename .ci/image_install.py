"""Install the bot exactly as the Dockerfile does, in a fresh venv, and start it.

No image can be pulled or built here, so this replays the Dockerfile's own steps: ``ENV``,
``WORKDIR``, ``COPY`` (from this checkout into a scratch root) and every ``pip`` command of its
``RUN`` lines (the user and folder set-up needs root inside an image and is checked by
tests/app/test_deploy.py instead). Then ``python -m bot`` and ``python -m bot check`` must start
far enough to say what is missing: exit status 2 and one line naming DISCORD_TOKEN. A
dependency the Dockerfile forgets, or a file it does not copy, fails here.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    steps = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            steps.append((keyword.upper(), rest.strip()))
    return steps


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="image-install-") as scratch:
        root = Path(scratch) / "root"
        venv = Path(scratch) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": scratch}
        workdir = root
        for keyword, rest in instructions():
            if keyword == "ENV":
                for pair in shlex.split(rest):
                    key, _, value = pair.partition("=")
                    env[key] = value
            elif keyword == "WORKDIR":
                workdir = root / rest.lstrip("/")
                workdir.mkdir(parents=True, exist_ok=True)
            elif keyword == "COPY":
                *sources, dest = rest.split()
                target = workdir / dest if not dest.startswith("/") else root / dest.lstrip("/")
                for source in sources:
                    origin = ROOT / source
                    into = target / origin.name if dest.endswith("/") or dest == "./" else target
                    into.parent.mkdir(parents=True, exist_ok=True)
                    if origin.is_dir():
                        shutil.copytree(origin, into, dirs_exist_ok=True)
                    else:
                        shutil.copy2(origin, into)
            elif keyword == "RUN":
                for command in rest.split("&&"):
                    words = shlex.split(command)
                    if words and words[0] == "pip":
                        print(f"image-install: {command.strip()}", flush=True)
                        subprocess.run(
                            [str(venv / "bin" / "pip"), *words[1:]],
                            cwd=workdir,
                            env=env,
                            check=True,
                        )
        # The image's CMD, and its self-check, with no token: each gets as far as saying so.
        bare = {k: v for k, v in env.items() if not k.startswith("DISCORD")}
        for command in (["-m", "bot"], ["-m", "bot", "check"]):
            started = subprocess.run(
                [str(venv / "bin" / "python"), *command],
                check=False,
                cwd=workdir,
                env=bare,
                capture_output=True,
                text=True,
                timeout=60,
            )
            said = started.stderr.strip()
            print(f"image-install: python {' '.join(command)} -> {started.returncode}: {said}")
            if started.returncode != 2 or "DISCORD_TOKEN" not in started.stderr:
                print("image-install: FAILED: the installed bot did not start as expected")
                return 1
        if os.environ.get("CI"):
            print("image-install: the Dockerfile's install works")
    return 0


if __name__ == "__main__":
    sys.exit(main())
