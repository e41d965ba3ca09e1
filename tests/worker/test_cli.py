"""`syndicate check`: every problem in one run; exit 2 when invalid, 0 when valid."""

import subprocess

from tests.conftest import BIN, new_secret, write_config


def run(*args, env=None, cwd=None):
    return subprocess.run([str(BIN / "syndicate"), *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=60)


def test_check_names_every_problem_and_exits_2(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('[site]\ntitle = "x"\nurl = "ftp://x.example"\nfeeds_url = "https://x.example/f"\n'
                    '[[partners]]\nname = "p"\nurl = "https://p.example"\nsecret = "${NOT_SET_ANYWHERE}"\nsecert = 1\n')
    result = run("--config", str(path), "check")
    assert result.returncode == 2
    for fragment in ("[site] url", "NOT_SET_ANYWHERE is not set", "[[partners]] 'p' secert: unknown key"):
        assert fragment in result.stderr, result.stderr


def test_check_passes_a_valid_file_and_connects(tmp_path, redis_url, sqlite_url):
    import os

    path = write_config(tmp_path / "ok.toml", partners=[{"name": "p", "url": "https://p.example/h",
                                                         "secret": new_secret()}])
    env = dict(os.environ, REDIS_URL=redis_url, DATABASE_URL=sqlite_url)
    result = run("--config", str(path), "check", "--connect", env=env)
    assert result.returncode == 0, result.stderr
    assert "redis: ok" in result.stdout and "database: ok" in result.stdout


def test_check_connect_fails_when_redis_does_not_answer(tmp_path, sqlite_url):
    import os

    path = write_config(tmp_path / "ok.toml")
    env = dict(os.environ, REDIS_URL="redis://127.0.0.1:1/0", DATABASE_URL=sqlite_url)
    result = run("--config", str(path), "check", "--connect", env=env)
    assert result.returncode == 2
    assert "redis: cannot connect" in result.stderr
